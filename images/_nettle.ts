/**
 * SHA-256 and SHA-512 through GNU Nettle (`libnettle.so.8`, Debian's
 * `libnettle8`, which GnuTLS and so apt depend on) over Deno FFI: the
 * content store's digests and the layers' diff IDs. Nettle uses the CPU's
 * SHA instructions as OpenSSL does, so it hashes as fast as `node:crypto`,
 * and it keeps the image store's processes off `node:crypto`: importing a
 * `node:` module sets up Deno's Node compatibility layer, about 4 MB of RSS
 * (and `node:crypto` 4 MB more). Loading Nettle costs about 0.3 MB.
 *
 * Hashing runs on the JS thread: measured here, handing each chunk of a
 * layer to another thread (`nonblocking` calls) saved no time, since the
 * JS thread then waits for the hash before it may reuse the chunk, and it
 * cost about 0.5 MB of RSS (a blocking-task thread and its malloc arena).
 *
 * {@link nettle} returns null where Nettle cannot be loaded (no library, no
 * FFI permission, not Linux); callers then use `node:crypto`.
 *
 * @module
 */

const SYMBOLS = {
  nettle_sha256_init: { parameters: ["buffer"], result: "void" },
  nettle_sha256_update: { parameters: ["buffer", "usize", "buffer"], result: "void" },
  nettle_sha256_digest: { parameters: ["buffer", "usize", "buffer"], result: "void" },
  nettle_sha512_init: { parameters: ["buffer"], result: "void" },
  nettle_sha512_update: { parameters: ["buffer", "usize", "buffer"], result: "void" },
  nettle_sha512_digest: { parameters: ["buffer", "usize", "buffer"], result: "void" },
} as const;

/** Nettle's functions tug calls. */
export type Nettle = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/**
 * Room for a hash context: `struct sha256_ctx` is 112 bytes and `struct
 * sha512_ctx` 216 in Nettle 3.x, which libnettle.so.8 is.
 */
export const CTX_SIZE = 256;

let loaded: Nettle | null | undefined;

/** Nettle's functions, or null where the library cannot be loaded. */
export function nettle(): Nettle | null {
  if (loaded !== undefined) return loaded;
  loaded = null;
  if (Deno.build.os !== "linux") return loaded;
  try {
    loaded = Deno.dlopen("libnettle.so.8", SYMBOLS).symbols;
  } catch {
    // no Nettle, or no FFI permission
  }
  return loaded;
}

/** Lowercase hex of `bytes`. */
export function hex(bytes: Uint8Array): string {
  let out = "";
  for (const b of bytes) out += (b < 16 ? "0" : "") + b.toString(16);
  return out;
}
