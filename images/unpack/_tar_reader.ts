/**
 * Internal to images/unpack: a streaming reader of layer tars that hands
 * over each entry's data as views of the source's own chunks, so that
 * applying a layer copies nothing and allocates nothing per chunk.
 *
 * It reads what Go's archive/tar (and so containerd) reads in layers:
 * ustar, PAX and GNU headers, octal or base-256 numbers, checksums summed
 * signed or unsigned, PAX records (`path`, `linkpath`, `size`, `uid`, `gid`,
 * `mtime`, `atime`, extended attributes as `SCHILY.xattr.*` or
 * `LIBARCHIVE.xattr.*`, kept byte for byte), GNU long names and long link
 * targets. As in Go's reader, a PAX global header is read and not applied,
 * and two zero blocks end the archive; what follows them is read (for the
 * diff ID) but not parsed. Malformed input throws {@link TarFormatError}.
 *
 * @module
 */

const BLOCK = 512;
/** The largest PAX or GNU long-name header accepted (as tar-stream's limit). */
const MAX_META = 4 << 20;
const SCHILY = "SCHILY.xattr.";
const LIBARCHIVE = "LIBARCHIVE.xattr.";
const EMPTY = new Uint8Array(0);
const decoder = new TextDecoder();

/** The types of entries, named as tar-stream names them. */
export type TarType =
  | "file"
  | "link"
  | "symlink"
  | "character-device"
  | "block-device"
  | "directory"
  | "fifo"
  | "contiguous-file";

/** A malformed or truncated tar. */
export class TarFormatError extends Error {
  override name = "TarFormatError";
}

/** The source stopped past the size limit (see {@link TarReaderOptions.maxSize}). */
export class TarLimitError extends Error {
  override name = "TarLimitError";
}

/** One entry's header, with its PAX records and GNU long names applied. */
export interface TarHeader {
  name: string;
  linkname: string;
  /** The entry type, or the type flag itself (a character) when tug does not know it. */
  type: TarType | string;
  size: number;
  mode: number;
  uid: number;
  gid: number;
  mtimeNs: bigint;
  atimeNs: bigint;
  devmajor: number;
  devminor: number;
  /** The PAX records that applied to the entry (values decoded as UTF-8), or undefined. */
  pax: Map<string, string> | undefined;
  /** Extended attributes from the PAX records, with their exact bytes. */
  xattrs: Map<string, Uint8Array>;
  /** The stream offset at which the entry's data ends (padding excluded). */
  dataEnd: number;
}

/** Options for {@link TarReader}. */
export interface TarReaderOptions {
  /** Called with each chunk of the source as it is read (for the diff ID). */
  onChunk?: (chunk: Uint8Array) => void;
  /**
   * The reader keeps reading the chunk that carries the stream past this
   * many bytes, then throws {@link TarLimitError} when it needs another.
   */
  maxSize?: number;
  signal?: AbortSignal;
}

const TYPES: Record<string, TarType> = {
  "0": "file",
  "\0": "file",
  "1": "link",
  "2": "symlink",
  "3": "character-device",
  "4": "block-device",
  "5": "directory",
  "6": "fifo",
  "7": "contiguous-file",
};

function isZero(block: Uint8Array): boolean {
  for (let i = 0; i < BLOCK; i++) if (block[i] !== 0) return false;
  return true;
}

function text(block: Uint8Array, offset: number, length: number): string {
  let end = offset;
  while (end < offset + length && block[end] !== 0) end++;
  return decoder.decode(block.subarray(offset, end));
}

/** A numeric field: octal (space- or NUL-terminated, possibly space-padded) or base-256. */
function number(block: Uint8Array, offset: number, length: number, what: string): number {
  const first = block[offset]!;
  if (first & 0x80) {
    // base-256, big-endian; two's complement when the next bit is set too (Go's parseNumeric)
    const inv = first & 0x40 ? 0xff : 0;
    let x = 0;
    for (let i = offset; i < offset + length; i++) {
      x = x * 256 + ((block[i]! ^ inv) & (i === offset ? 0x7f : 0xff));
    }
    const value = inv ? -x - 1 : x;
    if (!Number.isSafeInteger(value)) throw new TarFormatError(`the ${what} field is out of range`);
    return value;
  }
  let i = offset;
  const end = offset + length;
  while (i < end && (block[i] === 0x20 || block[i] === 0)) i++;
  let value = 0;
  let digits = 0;
  for (; i < end; i++) {
    const c = block[i]!;
    if (c === 0x20 || c === 0) break;
    if (c < 0x30 || c > 0x37) {
      throw new TarFormatError(`the ${what} field is not an octal number`);
    }
    value = value * 8 + (c - 0x30);
    digits++;
  }
  for (; i < end; i++) {
    if (block[i] !== 0x20 && block[i] !== 0) {
      throw new TarFormatError(`the ${what} field is not an octal number`);
    }
  }
  return digits === 0 ? 0 : value;
}

function checksumOk(block: Uint8Array): boolean {
  const stored = number(block, 148, 8, "checksum");
  let unsigned = 0, signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : block[i]!;
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  return stored === unsigned || stored === signed;
}

/** Seconds (a PAX decimal such as `1234.5` or `-1.25`) as nanoseconds. */
function paxTime(value: string | undefined): bigint | undefined {
  if (value === undefined || !/^-?\d+(\.\d*)?$/.test(value)) return undefined;
  const negative = value.startsWith("-");
  const [whole, frac = ""] = (negative ? value.slice(1) : value).split(".");
  const ns = BigInt(whole!) * 1_000_000_000n + BigInt((frac + "000000000").slice(0, 9));
  return negative ? -ns : ns;
}

function paxInt(value: string | undefined, fallback: number): number {
  if (value === undefined || !/^\d+$/.test(value)) return fallback;
  const n = Number(value);
  return Number.isSafeInteger(n) ? n : fallback;
}

function base64Bytes(value: string): Uint8Array {
  const binary = atob(value.replace(/=+$/, "").padEnd(Math.ceil(value.length / 4) * 4, "="));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

/**
 * Parses PAX records (`<length> <key>=<value>\n`) into `records` (values
 * decoded as UTF-8) and `xattrs` (exact bytes; GNU tar's and Go's
 * `SCHILY.xattr.<name>`, libarchive's `LIBARCHIVE.xattr.<url-encoded name>`
 * with a base64 value).
 */
export function parsePax(
  data: Uint8Array,
  records: Map<string, string>,
  xattrs: Map<string, Uint8Array>,
): void {
  let pos = 0;
  // The data may be NUL-padded past the last record.
  while (pos < data.length && data[pos] !== 0) {
    const space = data.indexOf(0x20, pos);
    if (space < 0) throw new TarFormatError("a PAX record has no length");
    const length = Number(decoder.decode(data.subarray(pos, space)));
    if (
      !Number.isInteger(length) || length <= space - pos + 1 || pos + length > data.length ||
      data[pos + length - 1] !== 0x0a
    ) {
      throw new TarFormatError("a PAX record has a wrong length");
    }
    const record = data.subarray(space + 1, pos + length - 1); // without the trailing newline
    const eq = record.indexOf(0x3d /* = */);
    if (eq <= 0) throw new TarFormatError("a PAX record has no key");
    const key = decoder.decode(record.subarray(0, eq));
    const value = record.subarray(eq + 1);
    if (key.startsWith(SCHILY)) {
      xattrs.set(key.slice(SCHILY.length), value.slice());
    } else if (key.startsWith(LIBARCHIVE)) {
      xattrs.set(
        decodeURIComponent(key.slice(LIBARCHIVE.length)),
        base64Bytes(decoder.decode(value)),
      );
    } else {
      records.set(key, decoder.decode(value));
    }
    pos += length;
  }
}

/**
 * Reads a tar from `source` entry by entry: {@link next} returns the next
 * header (skipping what is left of the previous entry's data), {@link read}
 * the entry's data piece by piece, each a view of a source chunk valid until
 * the next call. {@link finish} reads the source to its end.
 */
export class TarReader {
  readonly #source: AsyncIterator<Uint8Array>;
  readonly #onChunk: TarReaderOptions["onChunk"];
  readonly #maxSize: number;
  readonly #signal: AbortSignal | undefined;
  /** The current source chunk, and the position in it. */
  #chunk: Uint8Array = EMPTY;
  #at = 0;
  /** Bytes of the source read so far. */
  #size = 0;
  #sourceDone = false;
  #ended = false;
  /** Data bytes of the current entry not handed over yet, and its padding after them. */
  #remaining = 0;
  #padding = 0;
  /** A header assembled from pieces of several chunks. */
  readonly #block = new Uint8Array(BLOCK);
  /** Set when reading the source threw: the source's own error, for the caller to rethrow as is. */
  sourceError: { error: unknown } | undefined;

  constructor(source: AsyncIterable<Uint8Array>, options: TarReaderOptions = {}) {
    this.#source = source[Symbol.asyncIterator]();
    this.#onChunk = options.onChunk;
    this.#maxSize = options.maxSize ?? Infinity;
    this.#signal = options.signal;
  }

  /** Bytes of the source read so far. */
  get size(): number {
    return this.#size;
  }

  /** True once the source has been read to its end. */
  get done(): boolean {
    return this.#sourceDone;
  }

  /** Makes the next chunk of the source current; false at its end. */
  async #fill(): Promise<boolean> {
    if (this.#sourceDone) return false;
    if (this.#size > this.#maxSize) throw new TarLimitError("the layer is over the size limit");
    for (;;) {
      this.#signal?.throwIfAborted();
      let next: IteratorResult<Uint8Array>;
      try {
        next = await this.#source.next();
      } catch (err) {
        this.#sourceDone = true; // an iterator that threw is finished
        this.sourceError = { error: err };
        throw err;
      }
      this.#signal?.throwIfAborted();
      if (next.done) {
        this.#sourceDone = true;
        this.#chunk = EMPTY;
        this.#at = 0;
        return false;
      }
      const chunk = next.value;
      if (chunk.length === 0) continue;
      this.#size += chunk.length;
      this.#chunk = chunk;
      this.#at = 0;
      this.#onChunk?.(chunk);
      return true;
    }
  }

  /** Skips `n` bytes; false when the source ended first. */
  async #skip(n: number): Promise<boolean> {
    while (n > 0) {
      if (this.#at >= this.#chunk.length && !(await this.#fill())) return false;
      const k = Math.min(n, this.#chunk.length - this.#at);
      this.#at += k;
      n -= k;
    }
    return true;
  }

  /** Copies the next `into.length` bytes into `into`; the number copied (short at the source's end). */
  async #readInto(into: Uint8Array): Promise<number> {
    let n = 0;
    while (n < into.length) {
      if (this.#at >= this.#chunk.length && !(await this.#fill())) break;
      const k = Math.min(into.length - n, this.#chunk.length - this.#at);
      into.set(this.#chunk.subarray(this.#at, this.#at + k), n);
      this.#at += k;
      n += k;
    }
    return n;
  }

  /** The next 512-byte block: a view of the chunk, or the assembled copy; null at a clean end. */
  async #nextBlock(what: string): Promise<Uint8Array | null> {
    if (this.#at >= this.#chunk.length && !(await this.#fill())) return null;
    if (this.#chunk.length - this.#at >= BLOCK) {
      const block = this.#chunk.subarray(this.#at, this.#at + BLOCK);
      this.#at += BLOCK;
      return block;
    }
    const n = await this.#readInto(this.#block);
    if (n === 0) return null;
    if (n < BLOCK) throw new TarFormatError(`unexpected end of the stream in ${what}`);
    return this.#block;
  }

  /** The `size` bytes of an extended header's data (copied), its padding skipped. */
  async #meta(size: number, what: string): Promise<Uint8Array> {
    if (size > MAX_META) throw new TarFormatError(`the ${what} is larger than ${MAX_META} bytes`);
    const data = new Uint8Array(size);
    if ((await this.#readInto(data)) < size || !(await this.#skip(pad(size)))) {
      throw new TarFormatError(`unexpected end of the stream in the ${what}`);
    }
    return data;
  }

  /** The next entry's header, or null at the end of the archive. */
  async next(): Promise<TarHeader | null> {
    if (this.#ended) return null;
    if (!(await this.#skip(this.#remaining + this.#padding))) {
      throw new TarFormatError("unexpected end of the stream in an entry's data");
    }
    this.#remaining = this.#padding = 0;
    const pax = new Map<string, string>();
    const xattrs = new Map<string, Uint8Array>();
    let hasPax = false;
    let longName: string | undefined;
    let longLink: string | undefined;
    for (;;) {
      let block = await this.#nextBlock("a header");
      if (block === null) {
        if (hasPax || longName !== undefined || longLink !== undefined) {
          throw new TarFormatError("unexpected end of the stream after an extended header");
        }
        this.#ended = true;
        return null;
      }
      if (isZero(block)) {
        // Two zero blocks end the archive (one, then the end of the stream, too).
        block = await this.#nextBlock("the end-of-archive marker");
        if (block === null || isZero(block)) {
          this.#ended = true;
          return null;
        }
        throw new TarFormatError("a header follows a zero block");
      }
      if (!checksumOk(block)) {
        throw new TarFormatError(
          "a header's checksum is wrong (the data is corrupt or is not a tar)",
        );
      }
      const flag = String.fromCharCode(block[156]!);
      const size = number(block, 124, 12, "size");
      if (size < 0) throw new TarFormatError("a header's size is negative");
      switch (flag) {
        case "x": {
          parsePax(await this.#meta(size, "PAX header"), pax, xattrs);
          hasPax = true;
          continue;
        }
        case "g": {
          // Read, and not applied (as Go's reader, and so containerd, does).
          parsePax(await this.#meta(size, "PAX global header"), new Map(), new Map());
          continue;
        }
        case "L":
          longName = text(await this.#meta(size, "GNU long name"), 0, size);
          continue;
        case "K":
          longLink = text(await this.#meta(size, "GNU long link name"), 0, size);
          continue;
      }
      return this.#header(block, flag, size, hasPax ? pax : undefined, xattrs, longName, longLink);
    }
  }

  #header(
    block: Uint8Array,
    flag: string,
    size: number,
    pax: Map<string, string> | undefined,
    xattrs: Map<string, Uint8Array>,
    longName: string | undefined,
    longLink: string | undefined,
  ): TarHeader {
    const ustar = block[257] === 0x75 && block[258] === 0x73 && block[259] === 0x74 &&
      block[260] === 0x61 && block[261] === 0x72 && block[262] === 0; // "ustar\0" (POSIX, not GNU)
    let name = text(block, 0, 100);
    if (ustar && block[345] !== 0) name = `${text(block, 345, 155)}/${name}`;
    name = pax?.get("path") ?? longName ?? name;
    const linkname = pax?.get("linkpath") ?? longLink ?? text(block, 157, 100);
    const paxSize = pax?.get("size");
    if (paxSize !== undefined) {
      if (!/^\d+$/.test(paxSize) || !Number.isSafeInteger(Number(paxSize))) {
        throw new TarFormatError(`the PAX size of ${JSON.stringify(name)} is not a size`);
      }
      size = Number(paxSize);
    }
    let type: TarType | string = TYPES[flag] ?? flag;
    // Old tars mark directories with a trailing slash only.
    if (type === "file" && name.endsWith("/") && flag === "\0") type = "directory";
    const mtimeNs = paxTime(pax?.get("mtime")) ??
      BigInt(number(block, 136, 12, "mtime")) * 1_000_000_000n;
    const hasData = type !== "directory" && type !== "link" && type !== "symlink" &&
      type !== "character-device" && type !== "block-device" && type !== "fifo";
    // Go's reader: only regular files (and unknown types) carry data; others' sizes are ignored.
    const dataSize = hasData ? size : 0;
    const device = type === "character-device" || type === "block-device";
    const dataStart = this.#size - (this.#chunk.length - this.#at);
    this.#remaining = dataSize;
    this.#padding = pad(dataSize);
    return {
      name,
      linkname,
      type,
      size: dataSize,
      mode: number(block, 100, 8, "mode"),
      uid: paxInt(pax?.get("uid"), number(block, 108, 8, "uid")),
      gid: paxInt(pax?.get("gid"), number(block, 116, 8, "gid")),
      mtimeNs,
      atimeNs: paxTime(pax?.get("atime")) ?? mtimeNs,
      devmajor: device ? number(block, 329, 8, "devmajor") : 0,
      devminor: device ? number(block, 337, 8, "devminor") : 0,
      pax,
      xattrs,
      dataEnd: dataStart + dataSize,
    };
  }

  /**
   * The next piece of the current entry's data (a view of a source chunk,
   * valid until the next call), or null once it has all been read.
   */
  async read(): Promise<Uint8Array | null> {
    if (this.#remaining === 0) return null;
    if (this.#at >= this.#chunk.length && !(await this.#fill())) {
      throw new TarFormatError("unexpected end of the stream in an entry's data");
    }
    const k = Math.min(this.#remaining, this.#chunk.length - this.#at);
    const out = this.#chunk.subarray(this.#at, this.#at + k);
    this.#at += k;
    this.#remaining -= k;
    return out;
  }

  /** Reads the source to its end (the bytes after the archive are read, and not parsed). */
  async finish(): Promise<void> {
    if (!this.#ended) throw new Error("TarReader.finish() called before the end of the archive");
    while (await this.#fill()) this.#at = this.#chunk.length;
  }

  /** Lets go of the source (after a failure). */
  async close(): Promise<void> {
    if (!this.#sourceDone) {
      this.#sourceDone = true;
      await this.#source.return?.().catch(() => {});
    }
  }
}

function pad(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}
