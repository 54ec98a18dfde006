import { assertRejects } from "../../tests/assert.ts";
import { TarWriter } from "./_tar.ts";

Deno.test("TarWriter: an archive cancelled in the middle of a streamed entry fails that entry and leaves nothing unhandled", async () => {
  const tar = new TarWriter();
  const reader = tar.readable.getReader();
  const chunk = new Uint8Array(64 << 10);
  const endless = new ReadableStream<Uint8Array>({ pull: (c) => c.enqueue(chunk) });
  const writing = tar.stream("big", 1 << 30, endless);
  await reader.read();
  await reader.cancel(new Error("resource closed"));
  await assertRejects(() => writing);
  // An unhandled rejection would fail this test (and ended the daemon).
  await new Promise((r) => setTimeout(r, 50));
});
