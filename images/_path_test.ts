import * as node from "node:path";
import { assertEquals } from "../tests/assert.ts";
import { isAbsolute, join, normalize, resolve } from "./_path.ts";

const PATHS = [
  "",
  ".",
  "..",
  "/",
  "//",
  "/a/b/../c",
  "a/b/",
  "a/./b",
  "../a/..",
  "/..",
  "a/../..",
  "./",
  "a//b//",
  "/a/b/c/../../..",
  "x/../../y/",
];

Deno.test("the path helpers give node:path's results", () => {
  for (const a of PATHS) {
    assertEquals(normalize(a), node.normalize(a), `normalize(${JSON.stringify(a)})`);
    assertEquals(isAbsolute(a), node.isAbsolute(a), `isAbsolute(${JSON.stringify(a)})`);
    for (const b of PATHS) {
      assertEquals(join(a, b), node.join(a, b), `join(${JSON.stringify(a)}, ${JSON.stringify(b)})`);
      assertEquals(
        resolve(a, b),
        node.resolve(a, b),
        `resolve(${JSON.stringify(a)}, ${JSON.stringify(b)})`,
      );
    }
  }
});
