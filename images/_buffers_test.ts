import { assert } from "../tests/assert.ts";
import { giveBuffer, releaseBuffers, takeBuffer } from "./_buffers.ts";

Deno.test("takeBuffer() reuses a buffer given back, until releaseBuffers() empties the pool", () => {
  const a = takeBuffer(4096);
  giveBuffer(a);
  assert(takeBuffer(4096) === a, "the pooled buffer was not reused");
  giveBuffer(a);
  releaseBuffers();
  assert(takeBuffer(4096) !== a, "the pool kept a buffer after releaseBuffers()");
});
