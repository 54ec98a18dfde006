/**
 * A small pool of byte buffers shared by the pull's stages (download reads,
 * decompression output), so that a pull allocates its few megabytes of
 * buffers once per process rather than per layer. V8
 * frees an unreferenced ArrayBuffer only when a garbage collection runs, and
 * a pull makes almost no garbage on the JS heap to trigger one: every buffer
 * dropped per layer stays in the RSS until much later.
 *
 * A buffer must be given back only when nothing refers to it any more.
 * A long-lived process empties the pool before each idle-time collection
 * (util/gc.ts): the daemon kept up to 8 MiB of it after its last pull.
 *
 * @module
 */

import { onCollect } from "../util/gc.ts";

/** Bytes the pool keeps at most while no one uses them. */
const KEEP_BYTES = 8 << 20;

const free = new Map<number, ArrayBuffer[]>();
let kept = 0;

/** A buffer of exactly `size` bytes: a pooled one, or a new one. Its contents are undefined. */
export function takeBuffer(size: number): ArrayBuffer {
  const list = free.get(size);
  const buffer = list?.pop();
  if (buffer && buffer.byteLength === size) {
    kept -= size;
    return buffer;
  }
  return new ArrayBuffer(size);
}

/** Gives `buffer` back to the pool (dropped when the pool is full, or when it was detached). */
export function giveBuffer(buffer: ArrayBuffer): void {
  const size = buffer.byteLength;
  if (size === 0 || kept + size > KEEP_BYTES) return;
  let list = free.get(size);
  if (!list) free.set(size, list = []);
  if (list.includes(buffer)) return;
  list.push(buffer);
  kept += size;
}

/** Drops every pooled buffer (the garbage collector frees them). */
export function releaseBuffers(): void {
  free.clear();
  kept = 0;
}

onCollect(releaseBuffers);
