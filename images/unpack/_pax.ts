/**
 * Binary-safe extended attributes from PAX headers.
 *
 * tar-stream parses PAX records correctly (by their length prefixes) but hands
 * every value over as a UTF-8 decoded string, which destroys binary values:
 * `SCHILY.xattr.security.capability` holds a little-endian capability mask,
 * and any byte ≥ 0x80 in it (CAP_SETUID is bit 7) turns into U+FFFD. So the
 * applier keeps a short window of the raw stream ({@link RawWindow}) and, for
 * an entry whose PAX records name xattrs, re-reads the extended headers that
 * precede it ({@link rawXattrs}). The window is trimmed as entries go by, so
 * it holds only the bytes between the end of the last entry's data and the
 * read position: a few blocks, never a file's contents.
 *
 * @module
 */

const BLOCK = 512;
const SCHILY = "SCHILY.xattr.";
const LIBARCHIVE = "LIBARCHIVE.xattr.";
const decoder = new TextDecoder();

/** True when PAX records (as tar-stream decoded them) carry extended attributes. */
export function hasXattrRecords(pax: Record<string, string> | null | undefined): boolean {
  if (!pax) return false;
  for (const key in pax) if (key.startsWith(SCHILY) || key.startsWith(LIBARCHIVE)) return true;
  return false;
}

/** The last bytes of a stream, from a moving start offset to the read position. */
export class RawWindow {
  #chunks: { start: number; bytes: Uint8Array }[] = [];
  #keepFrom = 0;
  #end = 0;

  /** Appends the next chunk of the stream. */
  push(bytes: Uint8Array): void {
    this.#chunks.push({ start: this.#end, bytes });
    this.#end += bytes.length;
    this.#trim();
  }

  /** Forgets everything before `offset`. */
  keepFrom(offset: number): void {
    if (offset > this.#keepFrom) this.#keepFrom = offset;
    this.#trim();
  }

  /** Bytes [start, end) of the stream, or undefined when they are no longer (or not yet) held. */
  slice(start: number, end: number): Uint8Array | undefined {
    if (start < this.#keepFrom || end > this.#end || start > end) return undefined;
    const out = new Uint8Array(end - start);
    for (const { start: s, bytes } of this.#chunks) {
      const e = s + bytes.length;
      if (e <= start || s >= end) continue;
      const from = Math.max(start, s), to = Math.min(end, e);
      out.set(bytes.subarray(from - s, to - s), from - start);
    }
    return out;
  }

  #trim(): void {
    while (this.#chunks.length > 0) {
      const first = this.#chunks[0]!;
      if (first.start + first.bytes.length > this.#keepFrom) break;
      this.#chunks.shift();
    }
  }
}

function octal(block: Uint8Array, offset: number, length: number): number {
  let value = 0;
  for (let i = offset; i < offset + length; i++) {
    const c = block[i]!;
    if (c === 0 || c === 0x20) {
      if (value === 0) continue;
      break;
    }
    if (c < 0x30 || c > 0x37) return NaN;
    value = value * 8 + (c - 0x30);
  }
  return value;
}

function base64Bytes(text: string): Uint8Array {
  const binary = atob(text.replace(/=+$/, "").padEnd(Math.ceil(text.length / 4) * 4, "="));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

/**
 * Parses the extended headers in `meta` (the raw blocks between the previous
 * entry's data and an entry's own header) and returns the extended attributes
 * their per-entry PAX records set, with their exact bytes. Both GNU tar/Go
 * (`SCHILY.xattr.<name>=<raw bytes>`) and libarchive
 * (`LIBARCHIVE.xattr.<url-encoded name>=<base64>`) spellings are understood.
 */
export function rawXattrs(meta: Uint8Array): Map<string, Uint8Array> {
  const xattrs = new Map<string, Uint8Array>();
  let off = 0;
  while (off + BLOCK <= meta.length) {
    const block = meta.subarray(off, off + BLOCK);
    const size = octal(block, 124, 12);
    if (!(size >= 0)) break;
    const data = meta.subarray(off + BLOCK, Math.min(meta.length, off + BLOCK + size));
    if (block[156] === 0x78 /* 'x': per-entry PAX header */) parseRecords(data, xattrs);
    off += BLOCK + Math.ceil(size / BLOCK) * BLOCK;
  }
  return xattrs;
}

function parseRecords(data: Uint8Array, into: Map<string, Uint8Array>): void {
  let pos = 0;
  while (pos < data.length) {
    const space = data.indexOf(0x20, pos);
    if (space < 0) return;
    const length = Number(decoder.decode(data.subarray(pos, space)));
    if (!Number.isInteger(length) || length <= space - pos || pos + length > data.length) return;
    const record = data.subarray(space + 1, pos + length - 1); // without the trailing newline
    const eq = record.indexOf(0x3d /* = */);
    if (eq > 0) {
      const key = decoder.decode(record.subarray(0, eq));
      const value = record.subarray(eq + 1);
      if (key.startsWith(SCHILY)) {
        into.set(key.slice(SCHILY.length), value.slice());
      } else if (key.startsWith(LIBARCHIVE)) {
        into.set(
          decodeURIComponent(key.slice(LIBARCHIVE.length)),
          base64Bytes(decoder.decode(value)),
        );
      }
    }
    pos += length;
  }
}
