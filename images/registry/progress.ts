/**
 * Transfer progress for the CLI's progress bars: bytes per blob, the total,
 * and the speed over the last seconds. A {@link ProgressTracker} collects
 * updates from the fetcher (or the pusher) and calls the callback at most
 * every `intervalMs` (and on every status change, and once at the end).
 *
 * @module
 */

import type { Digest } from "../types.ts";

/** Where one blob's transfer stands. */
export type TransferStatus =
  | "waiting"
  | "downloading"
  | "resuming"
  | "uploading"
  | "exists"
  | "done"
  | "failed";

/** Progress of one blob. */
export interface BlobProgress {
  digest: Digest;
  mediaType: string;
  /** Bytes of the blob in the store (or sent), including what an earlier attempt left. */
  done: number;
  total: number;
  status: TransferStatus;
}

/** Progress of a whole transfer. */
export interface TransferProgress {
  blobs: BlobProgress[];
  /** Sum of `done` over the blobs. */
  done: number;
  /** Sum of `total` over the blobs. */
  total: number;
  /** Bytes per second moved over the network, averaged over the last two seconds. */
  bytesPerSecond: number;
  /** Milliseconds since the transfer started. */
  elapsedMs: number;
  /** True in the last report. */
  finished: boolean;
}

/** Receives progress reports. */
export type ProgressFn = (progress: TransferProgress) => void;

const WINDOW_MS = 2000;

/** Collects per-blob progress and reports it, throttled. */
export class ProgressTracker {
  readonly #fn: ProgressFn | undefined;
  readonly #interval: number;
  readonly #blobs = new Map<Digest, BlobProgress>();
  readonly #start = performance.now();
  readonly #samples: [number, number][] = [];
  #moved = 0;
  #last = 0;

  constructor(fn: ProgressFn | undefined, options: { intervalMs?: number } = {}) {
    this.#fn = fn;
    this.#interval = options.intervalMs ?? 100;
  }

  /** Registers a blob (status `waiting`). */
  add(digest: Digest, mediaType: string, total: number): void {
    if (!this.#blobs.has(digest)) {
      this.#blobs.set(digest, { digest, mediaType, done: 0, total, status: "waiting" });
    }
  }

  /** Changes a blob's status (reported at once); `done` sets its byte count. */
  status(digest: Digest, status: TransferStatus, done?: number): void {
    const b = this.#blobs.get(digest);
    if (!b) return;
    b.status = status;
    if (done !== undefined) b.done = done;
    if (status === "exists" || status === "done") b.done = b.total;
    this.#report(true);
  }

  /** Counts `bytes` more moved for a blob. */
  bytes(digest: Digest, bytes: number): void {
    const b = this.#blobs.get(digest);
    if (b) b.done += bytes;
    this.#moved += bytes;
    this.#report(false);
  }

  /** Sends the last report. */
  finish(): void {
    this.#report(true, true);
  }

  /** The current state, as reported. */
  snapshot(finished = false): TransferProgress {
    const now = performance.now();
    this.#samples.push([now, this.#moved]);
    while (this.#samples.length > 2 && this.#samples[0]![0] < now - WINDOW_MS) {
      this.#samples.shift();
    }
    const [t0, b0] = this.#samples[0]!;
    const span = now - t0;
    const blobs = [...this.#blobs.values()].map((b) => ({ ...b }));
    return {
      blobs,
      done: blobs.reduce((s, b) => s + b.done, 0),
      total: blobs.reduce((s, b) => s + b.total, 0),
      bytesPerSecond: span > 0 ? Math.round(((this.#moved - b0) * 1000) / span) : 0,
      elapsedMs: Math.round(now - this.#start),
      finished,
    };
  }

  #report(force: boolean, finished = false): void {
    if (!this.#fn) return;
    const now = performance.now();
    if (!force && now - this.#last < this.#interval) return;
    this.#last = now;
    this.#fn(this.snapshot(finished));
  }
}
