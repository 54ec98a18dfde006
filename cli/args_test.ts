import { assertEquals, assertThrows } from "../tests/assert.ts";
import { InvalidArgument } from "../errors.ts";
import { parseArgs } from "./args.ts";

const specs = [
  { name: "bundle", aliases: ["b"], type: "string" as const },
  { name: "detach", aliases: ["d"], type: "boolean" as const },
  { name: "env", aliases: ["e"], type: "list" as const },
];

Deno.test("parseArgs() reads long, short, single-dash and = forms", () => {
  const a = parseArgs(["--bundle", "x", "-d", "-env=A=1", "--env", "B=2", "id"], specs);
  assertEquals(a.flags, { bundle: "x", detach: true, env: ["A=1", "B=2"] });
  assertEquals(a.positionals, ["id"]);
});

Deno.test("parseArgs() leaves a container's own command untouched", () => {
  const a = parseArgs(["-d", "img", "id", "sh", "-c", "echo --bundle"], specs, {
    stopAfterPositionals: 2,
  });
  assertEquals(a.positionals, ["img", "id"]);
  assertEquals(a.rest, ["sh", "-c", "echo --bundle"]);
});

Deno.test("parseArgs() names an unknown flag and a missing value", () => {
  assertThrows(() => parseArgs(["--nope"], specs), InvalidArgument, "--nope");
  assertThrows(() => parseArgs(["--bundle"], specs), InvalidArgument, "--bundle");
});
