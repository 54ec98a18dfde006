import zlib from "node:zlib";
import { NotImplemented } from "../../errors.ts";
import { assert, assertEquals, assertRejects, assertThrows } from "../../tests/assert.ts";
import { MEDIA_TYPES } from "../types.ts";
import { InvalidArgument } from "../../errors.ts";
import {
  compressionOf,
  decompress,
  decompressChunks,
  decompressLayer,
  isLayerType,
} from "./decompress.ts";

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

/** `data` in chunks of `size` bytes from one buffer that is overwritten after each chunk is used. */
async function* reused(data: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  const buffer = new Uint8Array(size);
  for (let at = 0; at < data.length; at += size) {
    const n = Math.min(size, data.length - at);
    buffer.set(data.subarray(at, at + n));
    yield buffer.subarray(0, n);
    buffer.fill(0xee);
  }
}

/** Everything `chunks` gives, copied as it comes (each chunk is valid only until the next). */
async function gather(chunks: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array<ArrayBuffer>[] = [];
  for await (const c of chunks) parts.push(c.slice());
  return new Uint8Array(await new Blob(parts).arrayBuffer());
}

/** Incompressible bytes followed by compressible ones: stored and compressed deflate blocks. */
const MIXED = new Uint8Array(700_000);
crypto.getRandomValues(MIXED.subarray(0, 65536));
MIXED.set(DATA.subarray(0, MIXED.length - 65536), 65536);

Deno.test("decompressChunks() inflates gzip from reused buffers of any size, members and trailing bytes too", async () => {
  const gz = zlib.gzipSync(MIXED);
  const members = new Uint8Array([
    ...zlib.gzipSync(MIXED.subarray(0, 1000)),
    ...zlib.gzipSync(MIXED.subarray(1000)),
  ]);
  const trailing = new Uint8Array([...gz, 0, 0, 0, 0]);
  for (const size of [1, 7, 4096, 65536, 1 << 20]) {
    const source = size === 1 ? zlib.gzipSync(MIXED.subarray(0, 3000)) : gz;
    const expected = size === 1 ? MIXED.subarray(0, 3000) : MIXED;
    assertEquals(await gather(decompressChunks(reused(source, size), "gzip")), expected, `${size}`);
    if (size === 1) continue;
    assertEquals(await gather(decompressChunks(reused(members, size), "gzip")), MIXED);
    assertEquals(await gather(decompressChunks(reused(trailing, size), "gzip")), MIXED);
  }
  assertEquals(
    await gather(decompressChunks(reused(zlib.zstdCompressSync(MIXED), 4096), "zstd")),
    MIXED,
  );
  assertEquals(await gather(decompressChunks(reused(MIXED, 4096), "none")), MIXED);
});

Deno.test("decompressChunks() refuses corrupt, truncated and non-gzip data", async () => {
  const gz = zlib.gzipSync(MIXED);
  const corrupt = Uint8Array.from(gz);
  corrupt[gz.length - 6] = corrupt[gz.length - 6]! ^ 0xff; // the CRC in the trailer
  await assertRejects(
    () => gather(decompressChunks(reused(corrupt, 4096), "gzip")),
    InvalidArgument,
    "corrupt",
  );
  await assertRejects(
    () => gather(decompressChunks(reused(gz.subarray(0, gz.length - 100), 4096), "gzip")),
    InvalidArgument,
    "unexpected end",
  );
  await assertRejects(
    () =>
      gather(decompressChunks(reused(new TextEncoder().encode("not gzip at all"), 4096), "gzip")),
    InvalidArgument,
    "corrupt",
  );
  await assertRejects(
    () => gather(decompressChunks(reused(new Uint8Array(0), 4096), "gzip")),
    InvalidArgument,
  );
});

Deno.test("decompressChunks() returns its source's iterator when let go early", async () => {
  let returned = false;
  const source: AsyncIterable<Uint8Array> = {
    [Symbol.asyncIterator]: () => {
      const inner = reused(zlib.gzipSync(MIXED), 4096);
      return {
        next: () => inner.next(),
        return: async () => {
          returned = true;
          return await inner.return(undefined);
        },
      };
    },
  };
  for await (const _ of decompressChunks(source, "gzip")) break;
  assert(returned);
});
