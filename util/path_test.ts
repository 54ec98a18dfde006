import * as posix from "node:path";
import { assertEquals } from "../tests/assert.ts";
import { basename, dirname, isAbsolute, join, normalize, resolve } from "./path.ts";

const CASES = [
  "/",
  "",
  ".",
  "a",
  "/a/b/../c",
  "a/./b//c/",
  "../x",
  "/../x",
  "a/../../b",
  "/a/b/",
  "//a",
];

Deno.test("util/path agrees with node:path (posix) on the cases tug meets", () => {
  for (const p of CASES) {
    if (p !== "") {
      assertEquals(normalize(p), posix.normalize(p).replace(/(.)\/$/, "$1"), `normalize ${p}`);
      const n = posix.normalize(p);
      assertEquals(basename(n), posix.basename(n), `basename ${n}`);
      assertEquals(dirname(n), posix.dirname(n), `dirname ${n}`);
    }
    assertEquals(isAbsolute(p), posix.isAbsolute(p), `isAbsolute ${p}`);
    assertEquals(resolve("/base", p), posix.resolve("/base", p), `resolve ${p}`);
    assertEquals(join("/x", p), posix.join("/x", p).replace(/(.)\/$/, "$1"), `join ${p}`);
  }
  assertEquals(resolve("rel"), posix.resolve("rel"));
});
