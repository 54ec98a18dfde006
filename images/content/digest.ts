/**
 * OCI digests: parsing, validation and hashing. A digest is
 * `<algorithm>:<hex>`; tug accepts `sha256` (64 hex digits) and `sha512`
 * (128), lowercase, as the OCI image spec registers them.
 *
 * @module
 */

import { createHash, type Hash } from "node:crypto";
import { InvalidArgument } from "../../errors.ts";
import type { Digest } from "../types.ts";

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
  return `${algorithm}:${createHash(algorithm).update(data).digest("hex")}`;
}

/** An incremental digest: feed chunks with `update`, read the result with `digest`. */
export class Digester {
  readonly algorithm: DigestAlgorithm;
  #hash: Hash;
  #done: Digest | undefined;

  constructor(algorithm: DigestAlgorithm = "sha256") {
    this.algorithm = algorithm;
    this.#hash = createHash(algorithm);
  }

  /** Adds `chunk` to the digest. */
  update(chunk: Uint8Array): void {
    if (this.#done !== undefined) throw new Error("Digester.update() called after digest()");
    this.#hash.update(chunk);
  }

  /** The digest of everything fed so far; the digester cannot be updated afterwards. */
  digest(): Digest {
    this.#done ??= `${this.algorithm}:${this.#hash.digest("hex")}`;
    return this.#done;
  }
}
