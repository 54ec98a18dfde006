import { assertEquals } from "../tests/assert.ts";
import { collectSoon, onCollect } from "./gc.ts";

Deno.test({
  name: "collectSoon() calls the releasers registered with onCollect() once per burst",
  // tug's processes (and tools/run-tests) run with --expose-gc; without it collectSoon() does nothing.
  ignore: !(globalThis as { gc?: unknown }).gc,
}, async () => {
  let released = 0;
  onCollect(() => released++);
  collectSoon(10);
  collectSoon(10);
  await new Promise((r) => setTimeout(r, 100));
  assertEquals(released, 1);
});
