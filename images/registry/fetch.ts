/**
 * Fetching an image into a content store: resolve the reference, walk the
 * index (choosing platforms) and manifests, and download configs and layers,
 * layers in parallel (default 3 at a time), each streamed from the response
 * body into a content store ingest that verifies size and digest on commit.
 *
 * - Committed blobs are never fetched again (the store is checked first).
 * - A partial ingest (a pull killed half-way) resumes with `Range:
 *   bytes=<offset>-`; a server that answers 200 instead of 206 restarts the
 *   blob from zero. When a resumed blob fails verification it is fetched
 *   once more from the start.
 * - Manifests and indexes are committed after everything they reference, so
 *   a failed pull leaves no manifest whose content is missing; each gets
 *   containerd's GC labels (`containerd.io/gc.ref.content.*`), and every blob
 *   `containerd.io/distribution.source.<registry>=<repository>`.
 * - `onLayer(layer, stream)` hands each layer's compressed bytes to the
 *   caller while they download (so the unpacker can work during the
 *   download): the stream is fed from the same chunks that go to the store,
 *   with at most `teeBufferBytes` (default 1 MiB) buffered; a slow consumer
 *   slows that layer's download rather than growing memory. The stream ends
 *   only after the blob is verified and committed, and errors when the
 *   download fails. Layers already in the store, and resumed ones, are handed
 *   over as a stream read from the store (for resumed ones, once committed).
 * - `onLayerChunks(layer, chunks)` does the same without copying: the chunks
 *   are the download's own read buffers (a few, reused), each valid only
 *   until the consumer asks for the next one; the download waits while the
 *   consumer holds them all. This is the pull's path: it allocates nothing
 *   per chunk.
 *
 * @module
 */

import {
  AlreadyExists,
  Conflict,
  InvalidArgument,
  NotFound,
  TugError,
  Unavailable,
} from "../../errors.ts";
import { parseDigest } from "../content/digest.ts";
import type { ContentStore, Descriptor, Platform } from "../types.ts";
import { MEDIA_TYPES } from "../types.ts";
import {
  isIndexType,
  isManifestType,
  refuseSchema1,
  type RegistryClient,
  verifyBytes,
} from "./client.ts";
import {
  defaultPlatform,
  formatPlatform,
  type PlatformMatcher,
  platformMatcher,
} from "./platforms.ts";
import { giveBuffer, takeBuffer } from "../_buffers.ts";
import { sleep } from "../../util/sleep.ts";
import { type ProgressFn, ProgressTracker } from "./progress.ts";
import { formatReference, parseReference, type Reference, referenceName } from "./reference.ts";

/** Receives a layer's (compressed) bytes while it downloads; it must read or cancel the stream. */
export type LayerHandler = (layer: Descriptor, stream: ReadableStream<Uint8Array>) => void;

/**
 * A blob's bytes as a download (or a read of the store) delivers them: each
 * chunk is valid only until the next is asked for. The consumer must read to
 * the end, or let go with `return()` on its iterator or {@link LayerChunks.cancel}
 * (the download then goes on into the store alone).
 */
export interface LayerChunks extends AsyncIterable<Uint8Array> {
  /** Lets go: the bytes still to come are not delivered. */
  cancel(): void;
}

/** Receives a layer's (compressed) bytes as {@link LayerChunks}; it must read or cancel them. */
export type LayerChunksHandler = (layer: Descriptor, chunks: LayerChunks) => void;

/** Options for {@link fetchImage}. */
export interface FetchImageOptions {
  store: ContentStore;
  /** The platform to fetch (default: this machine's), or `all`. */
  platform?: Platform | "all";
  /**
   * The platform was asked for: a reference that names a single manifest
   * (no index) must be an image for it, by its config's os and architecture
   * (checked before any layer is fetched). Without it such an image is taken
   * whatever its platform, as Docker does.
   */
  strictPlatform?: boolean;
  /** Layers downloaded at once (default 3). */
  concurrency?: number;
  /** Gets each layer's stream while it downloads; called once per distinct layer, in manifest order. */
  onLayer?: LayerHandler;
  /** As `onLayer`, without copies (see the module documentation); not together with `onLayer`. */
  onLayerChunks?: LayerChunksHandler;
  /** Progress of the layer downloads. */
  onProgress?: ProgressFn;
  signal?: AbortSignal;
  /** Bytes a layer stream handed to `onLayer` may hold before its download waits (default 1 MiB). */
  teeBufferBytes?: number;
}

/** One manifest of a fetched image (one per chosen platform). */
export interface FetchedManifest {
  descriptor: Descriptor;
  /** The platform the index gave it, if any. */
  platform?: Platform;
  config: Descriptor;
  layers: Descriptor[];
}

/** Counts of a fetch. */
export interface FetchStats {
  /** Blobs downloaded from the start. */
  fetched: number;
  /** Blobs continued from a partial ingest. */
  resumed: number;
  /** Blobs the store had already. */
  existing: number;
  /** Bytes received from the registry. */
  bytes: number;
}

/** The result of {@link fetchImage}. */
export interface FetchedImage {
  reference: Reference;
  /** The normalised reference, e.g. `docker.io/library/busybox:latest`. */
  name: string;
  /** What the reference resolved to (index or manifest): the image's target. */
  target: Descriptor;
  manifests: FetchedManifest[];
  stats: FetchStats;
}

/** How {@link fetchBlob} got a blob into the store. */
export type FetchOutcome = "fetched" | "resumed" | "exists";

/** Options for {@link fetchBlob}. */
export interface FetchBlobOptions {
  store: ContentStore;
  /** Labels for the committed blob (merged into an existing blob's labels). */
  labels?: Record<string, string>;
  /** Gets the blob's bytes while it downloads (see the module documentation). */
  onStream?: (stream: ReadableStream<Uint8Array>) => void;
  /** As `onStream`, without copies (see the module documentation); not together with `onStream`. */
  onChunks?: (chunks: LayerChunks) => void;
  progress?: ProgressTracker;
  signal?: AbortSignal;
  teeBufferBytes?: number;
  /** Counts received bytes. */
  onBytes?: (n: number) => void;
}

const MAX_CONFIG_SIZE = 16 << 20;
const SOURCE_LABEL = "containerd.io/distribution.source.";

/** The ingest ref tug uses for a blob: `<kind>-<digest>` as containerd's MakeRefKey. */
export function ingestRef(desc: Descriptor): string {
  if (isManifestType(desc.mediaType)) {
    return `${isIndexType(desc.mediaType) ? "index" : "manifest"}-${desc.digest}`;
  }
  if (desc.mediaType === MEDIA_TYPES.ociConfig || desc.mediaType === MEDIA_TYPES.dockerConfig) {
    return `config-${desc.digest}`;
  }
  return `layer-${desc.digest}`;
}

/** A readable stream fed by a producer that waits while the consumer is `highWater` bytes behind. */
class Tee {
  readonly stream: ReadableStream<Uint8Array>;
  #controller!: ReadableStreamDefaultController<Uint8Array>;
  #wake: (() => void) | undefined;
  #cancelled = false;
  #closed = false;

  constructor(highWater: number) {
    this.stream = new ReadableStream<Uint8Array>({
      start: (c) => {
        this.#controller = c;
      },
      pull: () => this.#wakeUp(),
      cancel: () => {
        this.#cancelled = true;
        this.#wakeUp();
      },
    }, new ByteLengthQueuingStrategy({ highWaterMark: highWater }));
  }

  #wakeUp(): void {
    const w = this.#wake;
    this.#wake = undefined;
    w?.();
  }

  /** Enqueues `chunk`, then waits while the consumer is behind (an abort ends the wait with its reason). */
  async push(chunk: Uint8Array, signal?: AbortSignal): Promise<void> {
    if (this.#cancelled || this.#closed) return;
    this.#controller.enqueue(chunk);
    while (!this.#cancelled && (this.#controller.desiredSize ?? 1) <= 0) {
      await untilWoken((resolve) => this.#wake = resolve, signal);
    }
  }

  close(): void {
    if (this.#cancelled || this.#closed) return;
    this.#closed = true;
    this.#controller.close();
  }

  error(err: unknown): void {
    if (this.#cancelled || this.#closed) return;
    this.#closed = true;
    this.#controller.error(err);
  }
}

/**
 * Waits until `park`'s wake-up function is called, or `signal` aborts: then
 * throws its reason.
 */
async function untilWoken(
  park: (wake: () => void) => void,
  signal: AbortSignal | undefined,
): Promise<void> {
  signal?.throwIfAborted();
  let onAbort: (() => void) | undefined;
  try {
    await new Promise<void>((resolve) => {
      park(resolve);
      onAbort = resolve;
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  } finally {
    if (onAbort) signal?.removeEventListener("abort", onAbort);
  }
  signal?.throwIfAborted();
}

/**
 * Hands a download's read buffers to a consumer without copying them: the
 * download reads into one of `count` buffers, delivers it, and waits for a
 * free one when the consumer holds them all. A buffer is free again once the
 * consumer asks for the chunk after it (or lets go).
 */
class Relay implements LayerChunks {
  readonly #free: ArrayBuffer[] = [];
  readonly #queue: Uint8Array[] = [];
  readonly #count: number;
  readonly #size: number;
  /** Buffers taken from the pool and not given back yet. */
  #owned = 0;
  #lent: Uint8Array | undefined;
  #wakeProducer: (() => void) | undefined;
  #wakeConsumer: (() => void) | undefined;
  #ended = false;
  #error: { error: unknown } | undefined;
  #cancelled = false;
  #closed = false;
  #iterating = false;

  constructor(count: number, size: number) {
    this.#count = count;
    this.#size = size;
  }

  /**
   * A free buffer to read into: waits while the consumer holds them all (a
   * consumer that stopped reading would hold the download for ever, but for
   * the abort, which ends the wait with its reason).
   */
  async acquire(signal?: AbortSignal): Promise<ArrayBuffer> {
    for (;;) {
      const buffer = this.#free.pop();
      if (buffer) return buffer;
      if (this.#owned < this.#count) {
        this.#owned++;
        return takeBuffer(this.#size);
      }
      await untilWoken((resolve) => this.#wakeProducer = resolve, signal);
    }
  }

  /** An acquired buffer that a failed read took with it: the pool may make another. */
  lost(): void {
    this.#owned--;
  }

  /** A buffer the producer did not deliver after all (the read ended). */
  giveBack(buffer: ArrayBuffer | undefined): void {
    if (!buffer) return;
    if (this.#closed) {
      this.#owned--;
      giveBuffer(buffer);
    } else {
      this.#free.push(buffer);
    }
  }

  /** Delivers a chunk read into an acquired buffer; the relay owns the buffer from now on. */
  deliver(chunk: Uint8Array): void {
    if (this.#cancelled || this.#ended || this.#error) {
      this.#recycle(chunk);
      return;
    }
    this.#queue.push(chunk);
    this.#wake();
  }

  end(): void {
    this.#ended = true;
    this.#wake();
  }

  fail(error: unknown): void {
    if (this.#ended || this.#cancelled) return;
    this.#error = { error };
    for (const c of this.#queue.splice(0)) this.#recycle(c);
    this.#wake();
  }

  /** The producer is done: buffers go back to the pool as they come free. */
  close(): void {
    this.#closed = true;
    for (const b of this.#free.splice(0)) this.giveBack(b);
  }

  cancel(): void {
    if (this.#cancelled) return;
    this.#cancelled = true;
    if (this.#lent) this.#recycle(this.#lent);
    this.#lent = undefined;
    for (const c of this.#queue.splice(0)) this.#recycle(c);
    this.#wake();
  }

  #recycle(chunk: Uint8Array): void {
    this.giveBack(chunk.buffer as ArrayBuffer);
    const w = this.#wakeProducer;
    this.#wakeProducer = undefined;
    w?.();
  }

  #wake(): void {
    const w = this.#wakeConsumer;
    this.#wakeConsumer = undefined;
    w?.();
  }

  async #next(): Promise<IteratorResult<Uint8Array>> {
    if (this.#lent) this.#recycle(this.#lent);
    this.#lent = undefined;
    for (;;) {
      if (this.#cancelled) return { value: undefined, done: true };
      if (this.#error) throw this.#error.error;
      const chunk = this.#queue.shift();
      if (chunk) {
        this.#lent = chunk;
        return { value: chunk, done: false };
      }
      if (this.#ended) return { value: undefined, done: true };
      await new Promise<void>((resolve) => this.#wakeConsumer = resolve);
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    if (this.#iterating) throw new TypeError("The layer's chunks are being read already");
    this.#iterating = true;
    return {
      next: () => this.#next(),
      return: () => {
        this.cancel();
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }
}

/** The chunks of a stream read from the store, as {@link LayerChunks} (one reused buffer). */
export function streamChunks(stream: ReadableStream<Uint8Array>): LayerChunks {
  let generator: AsyncGenerator<Uint8Array> | undefined;
  let done = false;
  const finish = async () => {
    if (done) return;
    done = true;
    // A generator returned before its first next() runs nothing: cancel the stream here.
    if (generator) await generator.return(undefined);
    if (!stream.locked) await stream.cancel();
  };
  return {
    cancel() {
      finish().catch(() => {});
    },
    [Symbol.asyncIterator]() {
      return {
        next: () => {
          if (done) return Promise.resolve({ value: undefined, done: true });
          generator ??= chunks(stream);
          return generator.next();
        },
        return: async () => {
          await finish();
          return { value: undefined, done: true };
        },
      };
    },
  };
}

function sourceLabels(ref: Reference): Record<string, string> {
  return { [`${SOURCE_LABEL}${ref.domain}`]: ref.path };
}

async function hasBlob(store: ContentStore, desc: Descriptor): Promise<boolean> {
  let size: number;
  try {
    size = (await store.info(desc.digest)).size;
  } catch (err) {
    if (err instanceof NotFound) return false;
    throw err;
  }
  if (size !== desc.size) {
    throw new InvalidArgument(
      `fetch ${desc.digest} failed: the descriptor says ${desc.size} bytes, the stored blob has ${size}`,
    );
  }
  return true;
}

/** Adds labels missing from an existing blob. */
async function ensureLabels(
  store: ContentStore,
  desc: Descriptor,
  labels: Record<string, string>,
): Promise<void> {
  const info = await store.info(desc.digest);
  const missing = Object.entries(labels).filter(([k, v]) => info.labels[k] !== v);
  if (missing.length > 0) await store.update(desc.digest, Object.fromEntries(missing));
}

/**
 * Gets one blob into the store: nothing when it is there already, a resumed
 * download when a partial ingest exists, else a full download. Verifies size
 * and digest (the store's commit); a mismatch fails with InvalidArgument
 * naming the blob and both digests, and nothing is kept.
 */
export async function fetchBlob(
  client: RegistryClient,
  ref: Reference,
  desc: Descriptor,
  options: FetchBlobOptions,
): Promise<FetchOutcome> {
  const { store, progress, signal } = options;
  const labels = options.labels ?? {};
  const key = ingestRef(desc);
  const name = referenceName(ref);
  const handOver = async () => {
    if (options.onStream) options.onStream(await store.read(desc.digest));
    else if (options.onChunks) options.onChunks(streamChunks(await store.read(desc.digest)));
  };
  for (let attempt = 0;; attempt++) {
    signal?.throwIfAborted();
    if (await hasBlob(store, desc)) {
      await ensureLabels(store, desc, labels);
      progress?.status(desc.digest, "exists");
      await handOver();
      return "exists";
    }
    let writer;
    try {
      writer = await store.writer(key, { expected: desc.digest, total: desc.size });
    } catch (err) {
      if (err instanceof AlreadyExists) continue;
      if (err instanceof Conflict) {
        // Another fetch in this process is writing it: wait for it to finish.
        await sleep(50, signal);
        attempt--;
        continue;
      }
      throw err;
    }
    let tee: Tee | undefined;
    let relay: Relay | undefined;
    let resumed = false;
    try {
      let offset = writer.offset;
      if (offset > desc.size) {
        await writer.close();
        await store.abort(key);
        continue;
      }
      resumed = offset > 0;
      if (offset < desc.size) {
        let res = await client.fetchBlob(ref, desc, { offset, ...(signal ? { signal } : {}) });
        if (res.offset !== offset) {
          // The server ignored the range: start again from zero with its full answer.
          await writer.close();
          await store.abort(key);
          writer = await store.writer(key, { expected: desc.digest, total: desc.size });
          offset = 0;
          resumed = false;
        }
        if (offset === 0 && options.onStream) {
          tee = new Tee(options.teeBufferBytes ?? 1 << 20);
          options.onStream(tee.stream);
        } else if (offset === 0 && options.onChunks) {
          const count = Math.max(2, Math.ceil((options.teeBufferBytes ?? 1 << 20) / READ_BUFFER));
          relay = new Relay(count, READ_BUFFER);
          options.onChunks(relay);
        }
        progress?.status(desc.digest, resumed ? "resuming" : "downloading", offset);
        // A connection that breaks off mid-body is asked again from where the ingest stands
        // (`Range`), as containerd does, while the retries make progress.
        let broken = 0;
        let skip = 0;
        for (let retries = 0;; retries++) {
          const from = writer.offset;
          try {
            for await (let chunk of chunks(res.body, relay, signal, true)) {
              if (skip > 0) {
                // A registry that ignored the range sends the bytes the ingest has: drop them.
                const dropped = Math.min(skip, chunk.length);
                skip -= dropped;
                if (dropped === chunk.length) {
                  relay?.giveBack(chunk.buffer as ArrayBuffer);
                  continue;
                }
                chunk = chunk.subarray(dropped);
              }
              if (writer.offset + chunk.length > desc.size) {
                throw new InvalidArgument(
                  `fetch blob ${desc.digest} of ${name} failed: the registry sent more than the ${desc.size} bytes the descriptor gives`,
                );
              }
              // The chunk's buffer is reused for the next read: the stream's consumer gets a copy.
              if (tee) await tee.push(chunk.slice(), signal);
              await writer.write(chunk);
              options.onBytes?.(chunk.length);
              progress?.bytes(desc.digest, chunk.length);
              // The relay's consumer gets the buffer itself, and gives it back when done with it.
              relay?.deliver(chunk);
            }
            break;
          } catch (err) {
            if (!(err instanceof BodyBroken)) throw err;
            broken = writer.offset > from ? 1 : broken + 1;
            if (broken > BODY_RETRIES || retries >= BODY_RETRIES_TOTAL) {
              throw new Unavailable(
                `fetch blob ${desc.digest} of ${name} from ${res.host} failed: the connection broke off at byte ${writer.offset} of ${desc.size}${
                  retries > 0 ? ` (asked ${retries + 1} times)` : ""
                }: ${err.message}`,
                { cause: err.cause },
              );
            }
            await sleep(100 * broken, signal);
            res = await client.fetchBlob(ref, desc, {
              offset: writer.offset,
              ...(signal ? { signal } : {}),
            });
            skip = writer.offset - res.offset;
          }
        }
      }
      try {
        await writer.commit(desc.size, desc.digest, { labels });
      } catch (err) {
        if (!(err instanceof AlreadyExists)) throw err;
        await ensureLabels(store, desc, labels);
      }
      progress?.status(desc.digest, "done");
      if (tee) tee.close();
      else if (relay) relay.end();
      else await handOver();
      return resumed ? "resumed" : "fetched";
    } catch (err) {
      await writer.close();
      if (
        err instanceof InvalidArgument && /mismatch/.test(err.message) && resumed && attempt === 0
      ) {
        // The partial data may be what was wrong: the commit removed it; fetch the blob once more from zero.
        continue;
      }
      // An ingest that cannot be right is dropped; an interrupted one stays for the next pull to resume.
      if (err instanceof InvalidArgument) await store.abort(key).catch(() => {});
      progress?.status(desc.digest, "failed");
      const wrapped = err instanceof InvalidArgument && /^commit /.test(err.message)
        ? new InvalidArgument(
          `fetch blob ${desc.digest} of ${name} failed: ${
            err.message.replace(/^commit \S+ failed: /, "")
          }`,
          { cause: err },
        )
        : err;
      tee?.error(wrapped);
      relay?.fail(wrapped);
      throw wrapped;
    } finally {
      relay?.close();
    }
  }
}

const READ_BUFFER = 256 << 10;
/** Re-requests of a body that broke off with no byte gained since the last (containerd: 3). */
const BODY_RETRIES = 3;
/** Re-requests of one body in all. */
const BODY_RETRIES_TOTAL = 16;

/** A response body whose read failed (the connection broke off): the download may ask again. */
class BodyBroken extends Error {}

/**
 * The chunks of a response body. Byte streams (Deno's fetch bodies) are read
 * with a BYOB reader into one reused 256 KiB buffer, so a download makes no
 * garbage: each chunk is valid only until the next one is asked for. With a
 * relay, each read goes into a buffer taken from it, and the chunk belongs
 * to the relay once delivered. Other streams are read as they come. A
 * failed read of a registry's `response` body throws {@link BodyBroken}.
 */
async function* chunks(
  body: ReadableStream<Uint8Array>,
  relay?: Relay,
  signal?: AbortSignal,
  response = false,
): AsyncGenerator<Uint8Array> {
  /** A failed read: the abort's reason, or for a response {@link BodyBroken}. */
  function failed(err: unknown): never {
    signal?.throwIfAborted();
    if (!response) throw err;
    throw new BodyBroken(err instanceof Error ? err.message : String(err), { cause: err });
  }
  let reader: ReadableStreamBYOBReader;
  try {
    reader = body.getReader({ mode: "byob" });
  } catch {
    try {
      yield* body;
    } catch (err) {
      failed(err);
    }
    return;
  }
  // The abort ends a pending read here, whether or not fetch's own signal reaches the body
  // (a stalled registry would otherwise hold the pull, and its ingest, for ever).
  const onAbort = () => reader.cancel(signal!.reason).catch(() => {});
  signal?.addEventListener("abort", onAbort, { once: true });
  /** The reused buffer while no read holds it (without a relay). */
  let buffer: ArrayBuffer | undefined = relay ? undefined : takeBuffer(READ_BUFFER);
  try {
    for (;;) {
      signal?.throwIfAborted();
      const target = relay ? await relay.acquire(signal) : buffer!;
      buffer = undefined;
      let read: ReadableStreamReadResult<Uint8Array>;
      try {
        read = await reader.read(new Uint8Array(target));
      } catch (err) {
        // The read took the buffer with it.
        relay?.lost();
        failed(err);
      }
      const { value, done } = read;
      signal?.throwIfAborted();
      if (done) {
        if (relay) relay.giveBack(value?.buffer as ArrayBuffer | undefined);
        else buffer = value?.buffer as ArrayBuffer | undefined;
        return;
      }
      yield value;
      if (!relay) buffer = value.buffer as ArrayBuffer;
    }
  } finally {
    signal?.removeEventListener("abort", onAbort);
    if (buffer) giveBuffer(buffer);
    await reader.cancel().catch(() => {});
    reader.releaseLock();
  }
}

/** Reads a small blob (manifest, index, config) from the store, or fetches and verifies it. */
export async function readSmall(
  client: RegistryClient,
  ref: Reference,
  desc: Descriptor,
  options: { store: ContentStore; signal?: AbortSignal; preloaded?: Uint8Array | undefined },
): Promise<{ bytes: Uint8Array; stored: boolean }> {
  if (await hasBlob(options.store, desc)) {
    return { bytes: await options.store.readBytes(desc.digest), stored: true };
  }
  if (options.preloaded) return { bytes: options.preloaded, stored: false };
  const sig = options.signal ? { signal: options.signal } : {};
  if (isManifestType(desc.mediaType)) {
    return { bytes: await client.fetchManifest(ref, desc, sig), stored: false };
  }
  if (desc.size > MAX_CONFIG_SIZE) {
    throw new InvalidArgument(
      `fetch ${desc.digest} of ${
        referenceName(ref)
      } failed: ${desc.size} bytes is too large for a config`,
    );
  }
  const res = await client.fetchBlob(ref, desc, sig);
  const parts: Uint8Array[] = [];
  let size = 0;
  try {
    for await (const chunk of chunks(res.body, undefined, options.signal, true)) {
      size += chunk.length;
      if (size > desc.size) break;
      parts.push(chunk.slice()); // the read buffer is reused
    }
  } catch (err) {
    if (!(err instanceof BodyBroken)) throw err;
    throw new Unavailable(
      `fetch ${desc.digest} of ${
        referenceName(ref)
      } from ${res.host} failed: the connection broke off: ${err.message}`,
      { cause: err.cause },
    );
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    bytes.set(p.subarray(0, Math.min(p.length, size - at)), at);
    at += p.length;
  }
  verifyBytes(bytes, desc, `blob ${desc.digest} of ${referenceName(ref)}`);
  return { bytes, stored: false };
}

/**
 * Writes verified bytes of a small blob (manifest, index, config) into the
 * store, or adds the labels when the blob is there. Another pull in this
 * process writing the same blob (Conflict) is waited for.
 */
export async function storeSmall(
  store: ContentStore,
  desc: Descriptor,
  bytes: Uint8Array,
  labels: Record<string, string>,
  signal?: AbortSignal,
): Promise<void> {
  const key = ingestRef(desc);
  for (;;) {
    signal?.throwIfAborted();
    if (await hasBlob(store, desc)) return await ensureLabels(store, desc, labels);
    let w;
    try {
      w = await store.writer(key, { expected: desc.digest, total: desc.size });
    } catch (err) {
      if (err instanceof AlreadyExists) return await ensureLabels(store, desc, labels);
      if (err instanceof Conflict) {
        await sleep(20, signal);
        continue;
      }
      throw err;
    }
    try {
      if (w.offset > 0) {
        // A leftover partial ingest of a small blob: start it again.
        await w.close();
        await store.abort(key);
        continue;
      }
      await w.write(bytes);
      await w.commit(desc.size, desc.digest, { labels });
      return;
    } catch (err) {
      await w.close();
      if (err instanceof AlreadyExists) return await ensureLabels(store, desc, labels);
      throw err;
    }
  }
}

function parseJson(bytes: Uint8Array, what: string): Record<string, unknown> {
  try {
    const v = JSON.parse(new TextDecoder().decode(bytes));
    if (typeof v !== "object" || v === null || Array.isArray(v)) {
      throw new Error("not a JSON object");
    }
    return v as Record<string, unknown>;
  } catch (err) {
    throw new InvalidArgument(`parse ${what} failed: ${(err as Error).message}`, { cause: err });
  }
}

function checkDescriptor(value: unknown, what: string): Descriptor {
  const d = value as Descriptor;
  if (
    typeof d !== "object" || d === null || typeof d.mediaType !== "string" ||
    typeof d.digest !== "string" || !Number.isSafeInteger(d.size) || d.size < 0
  ) {
    throw new InvalidArgument(`parse ${what} failed: a descriptor lacks mediaType, digest or size`);
  }
  parseDigest(d.digest);
  return d;
}

/** Throws NotFound unless the image config `bytes` is for `platform`. */
function checkPlatform(
  bytes: Uint8Array,
  desc: Descriptor,
  platform: Platform,
  name: string,
): void {
  const config = parseJson(bytes, `config ${desc.digest} of ${name}`);
  const have: Platform = {
    os: typeof config.os === "string" ? config.os : "",
    architecture: typeof config.architecture === "string" ? config.architecture : "",
    ...(typeof config.variant === "string" && config.variant ? { variant: config.variant } : {}),
  };
  if (!platformMatcher(platform).match(have)) {
    throw new NotFound(
      `${name} is an image for ${formatPlatform(have)}, not for ${
        formatPlatform(platform)
      } (it has no index of platforms to choose from)`,
    );
  }
}

function platformRank(matcher: PlatformMatcher, a: Descriptor, b: Descriptor): number {
  if (a.platform && b.platform) {
    return matcher.less(a.platform, b.platform) ? -1 : matcher.less(b.platform, a.platform) ? 1 : 0;
  }
  if (a.platform) return -1;
  if (b.platform) return 1;
  return 0;
}

/** Picks the manifests of an index to fetch: the best match for one platform, or all. */
export function selectManifests(
  list: Descriptor[],
  platform: Platform | "all",
  what: string,
): Descriptor[] {
  if (platform === "all") return list;
  const matcher = platformMatcher(platform);
  const candidates = list.filter((d) => !d.platform || matcher.match(d.platform));
  if (candidates.length === 0) {
    const available = list.map((d) =>
      d.platform ? formatPlatform(d.platform) : "unknown"
    ).join(", ") || "none";
    throw new NotFound(
      `${what} has no manifest for platform ${formatPlatform(platform)} (available: ${available})`,
    );
  }
  return [[...candidates].sort((a, b) => platformRank(matcher, a, b))[0]!];
}

async function pool<T>(
  items: T[],
  concurrency: number,
  fn: (item: T) => Promise<void>,
  abort: AbortController,
): Promise<void> {
  let next = 0;
  let failure: unknown;
  const worker = async () => {
    while (failure === undefined && next < items.length) {
      const item = items[next++]!;
      try {
        await fn(item);
      } catch (err) {
        if (failure === undefined) {
          failure = err;
          abort.abort(err);
        }
      }
    }
  };
  await Promise.all(
    Array.from({ length: Math.max(1, Math.min(concurrency, items.length)) }, worker),
  );
  if (failure !== undefined) throw failure;
}

/**
 * Fetches the image `ref` into `options.store` and returns what it fetched.
 * Throws NotFound for unknown repositories and tags, InvalidArgument for
 * digest mismatches, Unauthenticated for refused credentials, Unavailable
 * when the registry cannot be reached, NotImplemented for schema 1.
 */
export async function fetchImage(
  client: RegistryClient,
  ref: string | Reference,
  options: FetchImageOptions,
): Promise<FetchedImage> {
  const reference = typeof ref === "string" ? parseReference(ref) : ref;
  const name = formatReference(reference);
  const { store } = options;
  const platform = options.platform ?? defaultPlatform();
  const abort = new AbortController();
  const outer = options.signal;
  const onOuterAbort = () => abort.abort(outer!.reason);
  if (outer?.aborted) abort.abort(outer.reason);
  outer?.addEventListener("abort", onOuterAbort, { once: true });
  const signal = abort.signal;
  const source = sourceLabels(reference);
  const stats: FetchStats = { fetched: 0, resumed: 0, existing: 0, bytes: 0 };
  const count = (o: FetchOutcome) => {
    if (o === "fetched") stats.fetched++;
    else if (o === "resumed") stats.resumed++;
    else stats.existing++;
  };
  try {
    const resolved = await client.resolve(reference, { signal });
    const target = resolved.descriptor;
    const manifests: FetchedManifest[] = [];
    /** Manifests/indexes to commit once their content is in, children before parents. */
    const pending: {
      desc: Descriptor;
      bytes: Uint8Array;
      labels: Record<string, string>;
      stored: boolean;
    }[] = [];

    const walk = async (desc: Descriptor, preloaded?: Uint8Array, depth = 0): Promise<void> => {
      const what = `${name}@${desc.digest}`;
      if (depth > 4) throw new InvalidArgument(`fetch ${name} failed: indexes nested too deep`);
      refuseSchema1(desc.mediaType, name);
      const { bytes, stored } = await readSmall(client, reference, desc, {
        store,
        signal,
        preloaded,
      });
      const json = parseJson(bytes, `manifest ${what}`);
      const labels: Record<string, string> = { ...source };
      if (isIndexType(desc.mediaType)) {
        if (!Array.isArray(json.manifests)) {
          throw new InvalidArgument(`parse index ${what} failed: it has no manifests list`);
        }
        const list = json.manifests.map((m, i) =>
          checkDescriptor(m, `index ${what} manifest ${i}`)
        );
        const chosen = selectManifests(
          list,
          platform === "all" ? "all" : platform,
          `index ${name}`,
        );
        chosen.forEach((c, i) => labels[`containerd.io/gc.ref.content.m.${i}`] = c.digest);
        for (const child of chosen) {
          if (!isManifestType(child.mediaType)) continue; // artifacts other than images
          await walk(child, undefined, depth + 1);
        }
        pending.push({ desc, bytes, labels, stored });
        return;
      }
      if (
        desc.mediaType === MEDIA_TYPES.ociManifest || desc.mediaType === MEDIA_TYPES.dockerManifest
      ) {
        const config = checkDescriptor(json.config, `manifest ${what} config`);
        if (!Array.isArray(json.layers)) {
          throw new InvalidArgument(`parse manifest ${what} failed: it has no layers list`);
        }
        const layers = json.layers.map((l, i) => checkDescriptor(l, `manifest ${what} layer ${i}`));
        labels["containerd.io/gc.ref.content.config"] = config.digest;
        layers.forEach((l, i) => labels[`containerd.io/gc.ref.content.l.${i}`] = l.digest);
        manifests.push({
          descriptor: desc,
          ...(desc.platform ? { platform: desc.platform } : {}),
          config,
          layers,
        });
        pending.push({ desc, bytes, labels, stored });
        return;
      }
      throw new InvalidArgument(
        `fetch ${name} failed: unsupported manifest media type "${desc.mediaType}"`,
      );
    };
    await walk(target, resolved.manifest);

    // Configs (small, one request each), then layers in parallel.
    for (const m of manifests) {
      const { bytes, stored } = await readSmall(client, reference, m.config, { store, signal });
      if (options.strictPlatform && platform !== "all" && !isIndexType(target.mediaType)) {
        checkPlatform(bytes, m.config, platform, name);
      }
      await storeSmall(store, m.config, bytes, source, signal);
      count(stored ? "exists" : "fetched");
    }
    const seen = new Set<string>();
    const layers: Descriptor[] = [];
    for (const m of manifests) {
      for (const l of m.layers) {
        if (seen.has(l.digest)) continue;
        seen.add(l.digest);
        layers.push(l);
      }
    }
    const progress = new ProgressTracker(options.onProgress);
    for (const l of layers) progress.add(l.digest, l.mediaType, l.size);
    await pool(layers, options.concurrency ?? 3, async (layer) => {
      const outcome = await fetchBlob(client, reference, layer, {
        store,
        labels: source,
        progress,
        signal,
        onBytes: (n) => stats.bytes += n,
        ...(options.onLayer
          ? { onStream: (s: ReadableStream<Uint8Array>) => options.onLayer!(layer, s) }
          : options.onLayerChunks
          ? { onChunks: (c: LayerChunks) => options.onLayerChunks!(layer, c) }
          : {}),
        ...(options.teeBufferBytes ? { teeBufferBytes: options.teeBufferBytes } : {}),
      });
      count(outcome);
    }, abort);
    progress.finish();

    for (const p of pending) {
      await storeSmall(store, p.desc, p.bytes, p.labels, signal);
      count(p.stored ? "exists" : "fetched");
    }
    return { reference, name, target, manifests, stats };
  } catch (err) {
    if (err instanceof TugError) throw err;
    if (signal.aborted && outer?.aborted) throw outer.reason ?? err;
    throw err;
  } finally {
    outer?.removeEventListener("abort", onOuterAbort);
  }
}
