/**
 * Byte arrays: joining the pieces of something read in parts, and writing
 * all of one to something whose writes may be short.
 *
 * @module
 */

/** Concatenates byte arrays (one part is returned as it is). */
export function concat(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** What {@link writeAll} writes to: a file, a connection, a FIFO, stdout. */
export interface Writer {
  write(p: Uint8Array): Promise<number>;
}

/** Writes all of `data`, however many writes that takes. */
export async function writeAll(w: Writer, data: Uint8Array): Promise<void> {
  for (let at = 0; at < data.length;) at += await w.write(data.subarray(at));
}
