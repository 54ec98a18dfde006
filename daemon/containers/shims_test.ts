import { assert, assertEquals } from "../../tests/assert.ts";
import { ShimManager } from "./shims.ts";

const manager = (state: string) =>
  new ShimManager({ state, groupLabel: "io.tug.shim.group", idleExit: 1000, onEvent: () => {} });

Deno.test("a shim group whose socket would not fit in a unix socket address gets a short, stable name", () => {
  const shims = manager("/run/tug");
  assertEquals(shims.group("default"), "default");
  assertEquals(shims.group("ns", { "io.tug.shim.group": "pod a" }), "ns.pod_a");
  const long = "n".repeat(76); // the longest namespace name tug accepts
  for (const labels of [{}, { "io.tug.shim.group": "g".repeat(90) }] as Record<string, string>[]) {
    const group = shims.group(long, labels);
    assert(new TextEncoder().encode(shims.socket(group)).length <= 107, shims.socket(group));
    assertEquals(shims.group(long, labels), group, "stable");
  }
  assert(
    shims.group(long, { "io.tug.shim.group": "a" }) !==
      shims.group(long, { "io.tug.shim.group": "b" }),
    "long names that differ get different groups",
  );
  // The longest state the config allows leaves 16 bytes: the hash alone.
  const tight = manager("/" + "s".repeat(107 - 1 - "/shims/0123456789abcdef/shim.sock".length));
  const group = tight.group(long);
  assertEquals(group.length, 16);
  assertEquals(new TextEncoder().encode(tight.socket(group)).length, 107);
});
