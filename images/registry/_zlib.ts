/**
 * gzip decompression through the system's zlib (`libz.so.1`, Debian's
 * `zlib1g`, which dpkg itself needs) over Deno FFI, into one reused output
 * buffer. `node:zlib` allocates a fresh buffer for every output chunk: for a
 * 100 MB layer that is 100 MB of garbage that V8 frees only once its
 * external-memory limit is reached, which grew the pulling process's RSS by
 * over 100 MB. Here nothing is allocated per chunk.
 *
 * {@link openInflater} returns undefined where libz cannot be loaded (no
 * library, no FFI permission, an architecture whose `z_stream` layout is not
 * the LP64 one below); callers then fall back to `node:zlib`.
 *
 * @module
 */

import { InvalidArgument } from "../../errors.ts";
import { giveBuffer, takeBuffer } from "../_buffers.ts";

const Z_OK = 0;
const Z_STREAM_END = 1;
const Z_BUF_ERROR = -5;
const Z_NO_FLUSH = 0;
/** windowBits 15 + 16: a gzip stream (header and trailer checked). */
const GZIP_WINDOW_BITS = 31;
const GZIP_MAGIC = 0x1f;

// struct z_stream on LP64 (x86_64, aarch64): pointers and uLong are 8 bytes, uInt 4.
const Z_STREAM_SIZE = 112;
const NEXT_IN = 0;
const AVAIL_IN = 8;
const NEXT_OUT = 24;
const AVAIL_OUT = 32;
const MSG = 48;

const SYMBOLS = {
  zlibVersion: { parameters: [], result: "pointer" },
  inflateInit2_: { parameters: ["buffer", "i32", "buffer", "i32"], result: "i32" },
  inflate: { parameters: ["buffer", "i32"], result: "i32" },
  inflateReset: { parameters: ["buffer"], result: "i32" },
  inflateEnd: { parameters: ["buffer"], result: "i32" },
} as const;

type Zlib = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

let loaded: { z: Zlib; version: Uint8Array } | null | undefined;

function load(): { z: Zlib; version: Uint8Array } | null {
  if (loaded !== undefined) return loaded;
  loaded = null;
  if (
    Deno.build.os !== "linux" || (Deno.build.arch !== "x86_64" && Deno.build.arch !== "aarch64")
  ) {
    return loaded;
  }
  try {
    const lib = Deno.dlopen("libz.so.1", SYMBOLS);
    const v = lib.symbols.zlibVersion();
    if (v === null) return loaded;
    const version = new Deno.UnsafePointerView(v).getCString();
    loaded = { z: lib.symbols, version: new TextEncoder().encode(`${version}\0`) };
  } catch {
    // no libz, or no FFI permission: node:zlib it is
  }
  return loaded;
}

function address(buf: Uint8Array): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf)));
}

/**
 * A gzip decompressor writing into one output buffer, reused for every piece
 * of output: {@link Inflater.push} gives it input, {@link Inflater.pull}
 * takes output until it returns null (the input is used up). Concatenated
 * gzip members are read as one stream (as `gunzip` and Go's reader do);
 * bytes after the last member that do not start another one are ignored (as
 * `node:zlib` does).
 */
export class Inflater {
  readonly #z: Zlib;
  readonly #strm = new Uint8Array(new ArrayBuffer(Z_STREAM_SIZE));
  readonly #view = new DataView(this.#strm.buffer);
  readonly #out: Uint8Array;
  readonly #outAddress: bigint;
  #input: Uint8Array = new Uint8Array(0);
  #at = 0;
  #open = true;
  #ended = false;
  #memberDone = false;
  /** The last call filled the output buffer: more output may be pending for the same input. */
  #full = false;

  /** @internal Use {@link openInflater}. */
  constructor(z: Zlib, version: Uint8Array, outSize: number) {
    this.#z = z;
    this.#out = new Uint8Array(takeBuffer(outSize));
    this.#outAddress = address(this.#out);
    const rc = z.inflateInit2_(this.#strm, GZIP_WINDOW_BITS, version, Z_STREAM_SIZE);
    if (rc !== Z_OK) throw new Error(`inflateInit2_ failed: ${rc}`);
  }

  /** True once the last gzip member's trailer has been read. */
  get ended(): boolean {
    return this.#ended;
  }

  /** Gives the next input; it must stay unchanged until {@link pull} returns null. */
  push(input: Uint8Array): void {
    this.#input = input;
    this.#at = 0;
  }

  /**
   * The next piece of output (a view of the reused buffer, valid until the
   * next call), or null once the input is used up. Throws InvalidArgument for
   * data that is not gzip or is corrupt.
   */
  pull(): Uint8Array | null {
    if (!this.#open) throw new Error("the inflater is closed");
    const z = this.#z, v = this.#view, strm = this.#strm;
    for (;;) {
      if (this.#ended || (this.#at >= this.#input.length && !this.#full)) return null;
      if (this.#memberDone) {
        // Another member follows, or trailing bytes that are not one (ignored).
        if (this.#input[this.#at] !== GZIP_MAGIC) {
          this.#ended = true;
          return null;
        }
        z.inflateReset(strm);
        this.#memberDone = false;
      }
      const rest = this.#input.length - this.#at;
      if (rest > 0) v.setBigUint64(NEXT_IN, address(this.#input) + BigInt(this.#at), true);
      v.setUint32(AVAIL_IN, rest, true);
      v.setBigUint64(NEXT_OUT, this.#outAddress, true);
      v.setUint32(AVAIL_OUT, this.#out.length, true);
      const rc = z.inflate(strm, Z_NO_FLUSH);
      if (rc !== Z_OK && rc !== Z_STREAM_END && rc !== Z_BUF_ERROR) throw this.#error(rc);
      const left = v.getUint32(AVAIL_IN, true);
      if (rc === Z_BUF_ERROR && left > 0) throw this.#error(rc);
      this.#at = this.#input.length - left;
      const produced = this.#out.length - v.getUint32(AVAIL_OUT, true);
      this.#full = rc === Z_OK && produced === this.#out.length;
      if (rc === Z_STREAM_END) this.#memberDone = true;
      if (produced > 0) return this.#out.subarray(0, produced);
    }
  }

  /** Throws InvalidArgument when the stream stopped in the middle of a member. */
  finish(): void {
    if (!this.#memberDone && !this.#ended) {
      throw new InvalidArgument("Decompress layer: unexpected end of the gzip stream");
    }
    this.#ended = true;
  }

  #error(rc: number): InvalidArgument {
    const msg = this.#view.getBigUint64(MSG, true);
    const text = msg === 0n
      ? `zlib error ${rc}`
      : Deno.UnsafePointerView.getCString(Deno.UnsafePointer.create(msg)!);
    return new InvalidArgument(`Decompress layer: the gzip data is corrupt: ${text}`);
  }

  /** Frees zlib's state and gives the output buffer back (no output may be in use); idempotent. */
  close(): void {
    if (!this.#open) return;
    this.#open = false;
    this.#z.inflateEnd(this.#strm);
    giveBuffer(this.#out.buffer as ArrayBuffer);
  }
}

/** A gzip inflater with an output buffer of `outSize` bytes, or undefined where libz is unusable. */
export function openInflater(outSize: number): Inflater | undefined {
  const lib = load();
  if (!lib) return undefined;
  return new Inflater(lib.z, lib.version, outSize);
}
