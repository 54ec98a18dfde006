import { assertEquals, assertThrows } from "../tests/assert.ts";
import { parseTomlDocument } from "./toml.ts";

Deno.test("parseTomlDocument() names the line and column of a syntax error on one line", () => {
  assertEquals(JSON.stringify(parseTomlDocument('a = 1\n[b]\nc = "d"\n')), '{"a":1,"b":{"c":"d"}}');
  const err = assertThrows(() => parseTomlDocument("a = 1\nb c = 2\n"), SyntaxError);
  assertEquals(err.message, "Invalid TOML document: illegal character in key at line 2, column 3");
  const unfinished = assertThrows(() => parseTomlDocument("server = ["), SyntaxError);
  assertEquals(unfinished.message, "Invalid TOML document: unfinished array at line 1, column 10");
});
