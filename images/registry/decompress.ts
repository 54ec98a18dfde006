/**
 * Layer decompression chosen from the media type: gzip, zstd or none.
 * Both codecs run through `node:zlib` (`createGunzip`, `createZstdDecompress`)
 * with 64 KiB output chunks: measured here on a 60 MB half-random layer,
 * node's gunzip takes about 170 ms against about 215 ms for
 * `DecompressionStream("gzip")`, and zstd about 140 ms.
 *
 * @module
 */

import { Duplex } from "node:stream";
import zlib from "node:zlib";
import { NotImplemented } from "../../errors.ts";
import { MEDIA_TYPES } from "../types.ts";

/** How a layer is compressed. */
export type Compression = "gzip" | "zstd" | "none";

const CHUNK = 64 * 1024;

/** The compression of a layer media type; throws NotImplemented for media types that are not layers tug can read. */
export function compressionOf(mediaType: string): Compression {
  switch (mediaType) {
    case MEDIA_TYPES.ociLayerGzip:
    case MEDIA_TYPES.ociLayerNondistributableGzip:
    case MEDIA_TYPES.dockerLayerGzip:
    case MEDIA_TYPES.dockerForeignLayerGzip:
      return "gzip";
    case MEDIA_TYPES.ociLayerZstd:
    case "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd":
      return "zstd";
    case MEDIA_TYPES.ociLayer:
    case "application/vnd.oci.image.layer.nondistributable.v1.tar":
    case "application/vnd.docker.image.rootfs.diff.tar":
      return "none";
  }
  throw new NotImplemented(`decompress layer failed: unsupported layer media type "${mediaType}"`);
}

/** True when `mediaType` is a layer type tug can unpack. */
export function isLayerType(mediaType: string): boolean {
  try {
    compressionOf(mediaType);
    return true;
  } catch {
    return false;
  }
}

/** Decompresses `stream` as `compression`. Errors of the codec (corrupt data) error the returned stream. */
export function decompress(
  stream: ReadableStream<Uint8Array>,
  compression: Compression,
): ReadableStream<Uint8Array> {
  switch (compression) {
    case "none":
      return stream;
    case "gzip":
      return stream.pipeThrough(webTransform(zlib.createGunzip({ chunkSize: CHUNK })));
    case "zstd":
      return stream.pipeThrough(webTransform(zlib.createZstdDecompress({ chunkSize: CHUNK })));
  }
}

/** Decompresses a layer stream according to its media type (see {@link compressionOf}). */
export function decompressLayer(
  mediaType: string,
  stream: ReadableStream<Uint8Array>,
): ReadableStream<Uint8Array> {
  return decompress(stream, compressionOf(mediaType));
}

function webTransform(codec: Duplex): ReadableWritablePair<Uint8Array, Uint8Array> {
  return Duplex.toWeb(codec) as unknown as ReadableWritablePair<Uint8Array, Uint8Array>;
}
