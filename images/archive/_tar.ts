/**
 * Internal to images/archive: reading and writing the outer tar of an image
 * archive with tar-stream (the tar library the unpacker uses too), bridged to
 * web streams with backpressure, plus detection and removal of an outer gzip
 * or zstd compression.
 *
 * @module
 */

import { Readable } from "node:stream";
import { pipeline } from "node:stream";
import { createZstdDecompress } from "node:zlib";
import tarStream from "tar-stream";
import { InvalidArgument } from "../../errors.ts";
import { concat } from "../../util/bytes.ts";

/** A tar entry: its header and its data, which must be read (or skipped) before the next entry. */
export interface TarEntry {
  header: tarStream.Header;
  body: AsyncIterable<Uint8Array>;
}

/**
 * The entries of the tar in `input`, in order. A body left unread is skipped.
 * Malformed or truncated tars fail with InvalidArgument.
 */
export async function* readTar(input: ReadableStream<Uint8Array>): AsyncGenerator<TarEntry> {
  const extract = tarStream.extract();
  const reader = input.getReader();
  let feedError: unknown;
  const feed = (async () => {
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (!extract.write(value)) {
          await new Promise<void>((resolve) => {
            const done = () => {
              extract.off("drain", done);
              extract.off("close", done);
              resolve();
            };
            extract.on("drain", done);
            extract.on("close", done);
          });
        }
        if (extract.destroyed) return;
      }
      extract.end(null);
    } catch (err) {
      feedError = err;
      extract.destroy(err as Error);
    }
  })();
  try {
    for await (const entry of extract) {
      let consumed = false;
      const body: AsyncIterable<Uint8Array> = {
        [Symbol.asyncIterator]() {
          consumed = true;
          return guarded(entry as AsyncIterable<Uint8Array>, () => feedError);
        },
      };
      yield { header: entry.header, body };
      if (!consumed) {
        for await (const _ of entry as AsyncIterable<Uint8Array>) {
          // skip
        }
      }
    }
  } catch (err) {
    throw unreadable(err, feedError);
  } finally {
    if (!extract.destroyed) extract.destroy();
    await reader.cancel().catch(() => {});
    await feed;
  }
}

function unreadable(err: unknown, feedError: unknown): unknown {
  if (err instanceof InvalidArgument) return err;
  const cause = feedError ?? err;
  const message = (cause as Error)?.message ?? String(cause);
  return new InvalidArgument(`Import archive: not a readable tar: ${message}`, { cause });
}

/** The chunks of an entry's body, with tar errors turned into InvalidArgument. */
async function* guarded(
  body: AsyncIterable<Uint8Array>,
  feedError: () => unknown,
): AsyncGenerator<Uint8Array> {
  try {
    for await (const chunk of body) yield chunk;
  } catch (err) {
    throw unreadable(err, feedError());
  }
}

/** A tar being written: add entries in order, then `finish`. */
export class TarWriter {
  readonly readable: ReadableStream<Uint8Array>;
  #pack = tarStream.pack();

  constructor() {
    // The pack's errors reach the readable (and each entry's callback); unlistened, its "error"
    // event would be thrown out of the event loop when the archive is cancelled.
    this.#pack.on("error", () => {});
    const chunks = (this.#pack as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]();
    this.readable = new ReadableStream<Uint8Array>({
      async pull(controller) {
        try {
          const { done, value } = await chunks.next();
          if (done) controller.close();
          else controller.enqueue(new Uint8Array(value.buffer, value.byteOffset, value.byteLength));
        } catch (err) {
          controller.error(err);
        }
      },
      cancel: (reason) => {
        this.#pack.destroy(reason instanceof Error ? reason : new Error(String(reason)));
      },
    }, { highWaterMark: 0 });
  }

  /** Adds a directory entry. */
  directory(name: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#pack.entry(
        { name, type: "directory", mode: 0o755, mtime: new Date(0) },
        (err) => err ? reject(err) : resolve(),
      );
    });
  }

  /** Adds a file whose bytes are in memory. */
  file(name: string, data: Uint8Array): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#pack.entry(
        { name, size: data.length, mode: 0o644, mtime: new Date(0) },
        data,
        (err) => err ? reject(err) : resolve(),
      );
    });
  }

  /** Adds a file of `size` bytes streamed from `source`. */
  async stream(name: string, size: number, source: ReadableStream<Uint8Array>): Promise<void> {
    const finished = Promise.withResolvers<void>();
    // Handled now, awaited at the end: when the archive is cancelled mid-entry (the client went
    // away), the loop below throws first, and an unhandled rejection would end the process.
    finished.promise.catch(() => {});
    const entry = this.#pack.entry(
      { name, size, mode: 0o644, mtime: new Date(0) },
      (err) => err ? finished.reject(err) : finished.resolve(),
    );
    entry.on("error", () => {}); // reported through the callback above
    for await (const chunk of source) {
      if (!entry.write(chunk)) {
        await new Promise<void>((resolve) => {
          const go = () => {
            entry.off("drain", go);
            entry.off("close", go);
            resolve();
          };
          entry.on("drain", go);
          entry.on("close", go);
        });
        if (entry.destroyed) {
          throw new Error(`Export images: the archive was closed while writing ${name}`);
        }
      }
    }
    entry.end(null);
    await finished.promise;
  }

  /** Ends the archive. */
  finish(): void {
    this.#pack.finalize();
  }

  /** Ends the archive with an error: readers of `readable` see it. */
  abort(err: Error): void {
    this.#pack.destroy(err);
  }
}

/** The compression of an archive, from its first bytes. */
export type Compression = "gzip" | "zstd" | "none";

/** Detects the compression of `head` (the stream's first bytes). */
export function detectCompression(head: Uint8Array): Compression {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return "gzip";
  if (
    head.length >= 4 && head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd
  ) return "zstd";
  return "none";
}

/** `input` with a leading gzip or zstd compression removed (detected from its first bytes). */
export async function decompressed(
  input: ReadableStream<Uint8Array>,
): Promise<{ stream: ReadableStream<Uint8Array>; compression: Compression }> {
  const reader = input.getReader();
  const first: Uint8Array[] = [];
  let size = 0;
  let done = false;
  while (size < 4) {
    const r = await reader.read();
    if (r.done) {
      done = true;
      break;
    }
    first.push(r.value);
    size += r.value.length;
  }
  const head = concat(first);
  const rest = new ReadableStream<Uint8Array>({
    start(controller) {
      if (head.length > 0) controller.enqueue(head);
      if (done) controller.close();
    },
    async pull(controller) {
      if (done) return;
      const r = await reader.read();
      if (r.done) {
        done = true;
        controller.close();
      } else controller.enqueue(r.value);
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
  const compression = detectCompression(head);
  switch (compression) {
    case "gzip":
      return {
        stream: rest.pipeThrough(
          new DecompressionStream("gzip") as unknown as TransformStream<Uint8Array, Uint8Array>,
        ),
        compression,
      };
    case "zstd": {
      const source = Readable.fromWeb(rest as unknown as import("node:stream/web").ReadableStream);
      const z = createZstdDecompress();
      pipeline(source, z, () => {});
      return { stream: Readable.toWeb(z) as unknown as ReadableStream<Uint8Array>, compression };
    }
    default:
      return { stream: rest, compression };
  }
}
