import zlib from "node:zlib";
import { NotImplemented } from "../../errors.ts";
import { assert, assertEquals, assertRejects, assertThrows } from "../../tests/assert.ts";
import { MEDIA_TYPES } from "../types.ts";
import { compressionOf, decompress, decompressLayer, isLayerType } from "./decompress.ts";

function streamOf(data: Uint8Array, chunk = 1000): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream({
    pull(c) {
      if (at >= data.length) return c.close();
      c.enqueue(data.slice(at, at + chunk));
      at += chunk;
    },
  });
}

async function collect(s: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(s).arrayBuffer());
}

const DATA = new TextEncoder().encode("tar bytes ".repeat(50_000));

Deno.test("compressionOf() maps layer media types and refuses others", () => {
  assertEquals(compressionOf(MEDIA_TYPES.ociLayerGzip), "gzip");
  assertEquals(compressionOf(MEDIA_TYPES.dockerLayerGzip), "gzip");
  assertEquals(compressionOf(MEDIA_TYPES.dockerForeignLayerGzip), "gzip");
  assertEquals(compressionOf(MEDIA_TYPES.ociLayerZstd), "zstd");
  assertEquals(compressionOf(MEDIA_TYPES.ociLayer), "none");
  assertThrows(() => compressionOf("application/json"), NotImplemented, "application/json");
  assert(isLayerType(MEDIA_TYPES.ociLayerZstd));
  assert(!isLayerType(MEDIA_TYPES.ociManifest));
});

Deno.test("decompressLayer() inflates gzip (several members too), zstd and plain layers", async () => {
  assertEquals(
    await collect(decompressLayer(MEDIA_TYPES.ociLayerGzip, streamOf(zlib.gzipSync(DATA)))),
    DATA,
  );
  const half = DATA.length >> 1;
  const twoMembers = new Uint8Array([
    ...zlib.gzipSync(DATA.subarray(0, half)),
    ...zlib.gzipSync(DATA.subarray(half)),
  ]);
  assertEquals(
    await collect(decompressLayer(MEDIA_TYPES.dockerLayerGzip, streamOf(twoMembers))),
    DATA,
  );
  assertEquals(
    await collect(decompressLayer(MEDIA_TYPES.ociLayerZstd, streamOf(zlib.zstdCompressSync(DATA)))),
    DATA,
  );
  assertEquals(await collect(decompressLayer(MEDIA_TYPES.ociLayer, streamOf(DATA))), DATA);
});

Deno.test("decompress() errors the stream on corrupt data", async () => {
  const bad = zlib.gzipSync(DATA);
  bad[bad.length >> 1] = bad[bad.length >> 1]! ^ 0xff;
  await assertRejects(() => collect(decompress(streamOf(bad), "gzip")));
  await assertRejects(() =>
    collect(decompress(streamOf(new TextEncoder().encode("not zstd at all")), "zstd"))
  );
});
