/**
 * OCI digests: parsing, validation and hashing. A digest is
 * `<algorithm>:<hex>`; tug accepts `sha256` (64 hex digits) and `sha512`
 * (128), lowercase, as the OCI image spec registers them.
 *
 * Hashing goes through GNU Nettle where it can be loaded (see `_nettle.ts`),
 * else through `node:crypto`, which is then imported when this module loads.
 *
 * @module
 */

import { InvalidArgument } from "../../errors.ts";
import { CTX_SIZE, hex, type Nettle, nettle } from "../_nettle.ts";
import type { Digest } from "../types.ts";

const native = nettle();
const nodeCrypto = native ? undefined : await import("node:crypto");
const encoder = new TextEncoder();

/** An incremental hash: Nettle's, or node:crypto's. */
interface Hasher {
  update(data: Uint8Array): void;
  hex(): string;
}

class NettleHasher implements Hasher {
  readonly #n: Nettle;
  readonly #sha512: boolean;
  /** The context: native code writes into it, so it is an ArrayBuffer of its own. */
  readonly #ctx = new Uint8Array(new ArrayBuffer(CTX_SIZE));

  constructor(n: Nettle, algorithm: DigestAlgorithm) {
    this.#n = n;
    this.#sha512 = algorithm === "sha512";
    if (this.#sha512) n.nettle_sha512_init(this.#ctx);
    else n.nettle_sha256_init(this.#ctx);
  }

  update(data: Uint8Array): void {
    if (data.length === 0) return;
    if (this.#sha512) this.#n.nettle_sha512_update(this.#ctx, BigInt(data.length), data);
    else this.#n.nettle_sha256_update(this.#ctx, BigInt(data.length), data);
  }

  hex(): string {
    const md = new Uint8Array(this.#sha512 ? 64 : 32);
    if (this.#sha512) this.#n.nettle_sha512_digest(this.#ctx, BigInt(md.length), md);
    else this.#n.nettle_sha256_digest(this.#ctx, BigInt(md.length), md);
    return hex(md);
  }
}

function hasher(algorithm: DigestAlgorithm): Hasher {
  if (native) return new NettleHasher(native, algorithm);
  const h = nodeCrypto!.createHash(algorithm);
  return { update: (data) => h.update(data), hex: () => h.digest("hex") };
}

/** A digest algorithm tug can verify. */
export type DigestAlgorithm = "sha256" | "sha512";

/** A digest split into its parts. */
export interface ParsedDigest {
  algorithm: DigestAlgorithm;
  hex: string;
}

const HEX_LENGTH: Record<DigestAlgorithm, number> = { sha256: 64, sha512: 128 };

/** Splits and validates a digest; throws InvalidArgument naming the digest and what is wrong with it. */
export function parseDigest(digest: string): ParsedDigest {
  if (typeof digest !== "string") {
    throw new InvalidArgument(`parse digest failed: ${String(digest)} is not a string`);
  }
  const colon = digest.indexOf(":");
  if (colon <= 0) {
    throw new InvalidArgument(
      `parse digest failed: "${digest}" is not of the form <algorithm>:<hex>`,
    );
  }
  const algorithm = digest.slice(0, colon);
  const hex = digest.slice(colon + 1);
  if (algorithm !== "sha256" && algorithm !== "sha512") {
    throw new InvalidArgument(
      `parse digest failed: "${digest}" uses unsupported algorithm "${algorithm}" (want sha256 or sha512)`,
    );
  }
  const want = HEX_LENGTH[algorithm];
  if (hex.length !== want || !/^[0-9a-f]+$/.test(hex)) {
    throw new InvalidArgument(
      `parse digest failed: "${digest}" must have ${want} lowercase hex digits after "${algorithm}:"`,
    );
  }
  return { algorithm, hex };
}

/** True when `value` is a well-formed digest tug can verify. */
export function isDigest(value: string): boolean {
  try {
    parseDigest(value);
    return true;
  } catch {
    return false;
  }
}

/** The digest of `data` (sha256 unless told otherwise). */
export function digestOf(data: Uint8Array | string, algorithm: DigestAlgorithm = "sha256"): Digest {
  const h = hasher(algorithm);
  h.update(typeof data === "string" ? encoder.encode(data) : data);
  return `${algorithm}:${h.hex()}`;
}

/** An incremental digest: feed chunks with `update`, read the result with `digest`. */
export class Digester {
  readonly algorithm: DigestAlgorithm;
  #hash: Hasher;
  #done: Digest | undefined;

  constructor(algorithm: DigestAlgorithm = "sha256") {
    this.algorithm = algorithm;
    this.#hash = hasher(algorithm);
  }

  /** Adds `chunk` to the digest. */
  update(chunk: Uint8Array): void {
    if (this.#done !== undefined) throw new Error("Digester.update() called after digest()");
    this.#hash.update(chunk);
  }

  /** The digest of everything fed so far; the digester cannot be updated afterwards. */
  digest(): Digest {
    this.#done ??= `${this.algorithm}:${this.#hash.hex()}`;
    return this.#done;
  }
}
