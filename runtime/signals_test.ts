import { assertEquals, assertThrows } from "../tests/assert.ts";
import { InvalidArgument } from "../errors.ts";
import { parseSignal, signalName } from "./signals.ts";

Deno.test("parseSignal takes names with or without SIG, numbers and real-time offsets", () => {
  assertEquals(parseSignal("TERM"), 15);
  assertEquals(parseSignal("sigkill"), 9);
  assertEquals(parseSignal("10"), 10);
  assertEquals(parseSignal("SIGRTMIN+1"), 35);
  assertEquals(signalName(9), "SIGKILL");
});

Deno.test("parseSignal takes 0 (an existence check) only when asked to", () => {
  assertEquals(parseSignal("0", { zero: true }), 0);
  assertThrows(() => parseSignal("0"), InvalidArgument, '"0" is out of range');
  assertThrows(() => parseSignal("65", { zero: true }), InvalidArgument, "out of range");
});
