import { InvalidArgument } from "../errors.ts";
import { assertEquals, assertThrows } from "../tests/assert.ts";
import { longGlobalFlag, parseArgs } from "./args.ts";
import {
  age,
  formatLabels,
  formatTable,
  GLOBAL_FLAGS,
  globalOptions,
  parseUserFlag,
  positionals,
  shortDigest,
  splitGlobals,
  withGlobals,
} from "./_common.ts";

Deno.test("splitGlobals() takes the global flags that come before the command", () => {
  assertEquals(splitGlobals(["-n", "ns", "--address=/x.sock", "ls", "-q"]), {
    globals: ["--namespace", "ns", "--address=/x.sock"],
    rest: ["ls", "-q"],
  });
  assertEquals(splitGlobals(["ls", "-n", "ns"]), { globals: [], rest: ["ls", "-n", "ns"] });
  assertEquals(splitGlobals(["--timeout", "5s", "-a", "/s", "pull", "x"]).rest, ["pull", "x"]);
});

Deno.test("globalOptions() reads the flags, then TUG_ADDRESS and TUG_NAMESPACE, then the defaults", () => {
  const saved = { a: Deno.env.get("TUG_ADDRESS"), n: Deno.env.get("TUG_NAMESPACE") };
  try {
    Deno.env.delete("TUG_ADDRESS");
    Deno.env.delete("TUG_NAMESPACE");
    assertEquals(globalOptions(parseArgs([], GLOBAL_FLAGS)), {
      address: "/run/tug/tug.sock",
      namespace: "default",
      namespaceGiven: false,
      timeout: 0,
    });
    Deno.env.set("TUG_ADDRESS", "/env.sock");
    Deno.env.set("TUG_NAMESPACE", "envns");
    assertEquals(globalOptions(parseArgs([], GLOBAL_FLAGS)), {
      address: "/env.sock",
      namespace: "envns",
      namespaceGiven: true,
      timeout: 0,
    });
    assertEquals(
      globalOptions(parseArgs(["-a", "/f.sock", "-n", "f", "--timeout", "1m"], GLOBAL_FLAGS)),
      {
        address: "/f.sock",
        namespace: "f",
        namespaceGiven: true,
        timeout: 60_000,
      },
    );
    assertThrows(
      () => globalOptions(parseArgs(["--timeout", "later"], GLOBAL_FLAGS)),
      InvalidArgument,
      "Invalid --timeout",
    );
    // An empty -n is refused, as ctr does, not taken as the default (nor TUG_NAMESPACE).
    for (const args of [["-n", ""], ["--namespace="]]) {
      assertThrows(
        () => globalOptions(parseArgs(args, GLOBAL_FLAGS)),
        InvalidArgument,
        'Invalid namespace "": -n/--namespace needs a name',
      );
    }
  } finally {
    for (const [k, v] of [["TUG_ADDRESS", saved.a], ["TUG_NAMESPACE", saved.n]] as const) {
      if (v === undefined) Deno.env.delete(k);
      else Deno.env.set(k, v);
    }
  }
});

Deno.test("positionals() names what is missing or extra", () => {
  const args = (p: string[]) => ({ flags: {}, positionals: p, rest: [] });
  assertEquals(positionals(args(["a"]), "tug x", "REF", 1), ["a"]);
  assertThrows(() => positionals(args([]), "tug x", "REF", 1), InvalidArgument, "tug x needs REF");
  assertThrows(
    () => positionals(args(["a", "b"]), "tug x", "REF", 1),
    InvalidArgument,
    "got 2 arguments: a b",
  );
  assertThrows(
    () => positionals(args(["a"]), "tug x", "no arguments", 0),
    InvalidArgument,
    "tug x takes no arguments, got 1 argument: a",
  );
});

Deno.test("formatTable() pads every column but the last", () => {
  assertEquals(
    formatTable(["NAME", "SIZE", "LABELS"], [["busybox", "1.2 MiB", "a=b"], ["x", "3 B", "-"]]),
    "NAME      SIZE      LABELS\nbusybox   1.2 MiB   a=b\nx         3 B       -",
  );
});

Deno.test("the small formatters", () => {
  assertEquals(formatLabels({}), "-");
  assertEquals(formatLabels({ a: "1", b: "2" }), "a=1,b=2");
  assertEquals(shortDigest(`sha256:${"ab".repeat(32)}`), "sha256:abababababab");
  const now = Date.parse("2026-01-01T00:00:00Z");
  assertEquals(age("2025-12-31T23:59:59Z", now), "1 second");
  assertEquals(age("2025-12-31T23:58:00Z", now), "2 minutes");
  assertEquals(age("2025-12-29T00:00:00Z", now), "3 days");
});

Deno.test("parseUserFlag() splits user:password at the first colon", () => {
  assertEquals(parseUserFlag(undefined), undefined);
  assertEquals(parseUserFlag("bob:s3:cret"), { username: "bob", password: "s3:cret" });
  assertThrows(() => parseUserFlag(":pw"), InvalidArgument, "expected user[:password]");
  assertThrows(() => parseUserFlag(""), InvalidArgument, 'Invalid --user "": expected');
});

Deno.test("a command's own short flag wins over the global one; globals before the command keep their meaning", () => {
  // `tug -a SOCK containers start -a ID`: the globals reach the command in their long form.
  const flags = withGlobals([{ name: "attach", aliases: ["a"], type: "boolean" }]);
  const parsed = parseArgs([longGlobalFlag("-a"), "/s.sock", "-a", "c1"], flags);
  assertEquals([parsed.flags.attach, parsed.flags.address, parsed.positionals], [
    true,
    "/s.sock",
    ["c1"],
  ]);
  // Commands without a flag of that letter take -a for the socket as before.
  assertEquals(parseArgs(["-a", "/t.sock"], withGlobals([])).flags.address, "/t.sock");
  assertEquals(
    ["-a", "-n", "-a=/x", "-n=ns", "--address", "-q"].map(longGlobalFlag),
    ["--address", "--namespace", "--address=/x", "--namespace=ns", "--address", "-q"],
  );
});
