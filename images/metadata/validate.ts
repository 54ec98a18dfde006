/**
 * Validation of names, labels and digests, with containerd's rules: an
 * identifier (a namespace name, a container id, a lease id) is alphanumeric
 * runs joined by single `.`, `_` or `-`, at most 76 characters; a label's key
 * and value together take at most 4096 bytes.
 *
 * @module
 */

import { InvalidArgument } from "../../errors.ts";
import type { Descriptor } from "../types.ts";

/** The longest identifier containerd accepts. */
export const MAX_IDENTIFIER_LENGTH = 76;

/** The most bytes a label's key and value may take together. */
export const MAX_LABEL_SIZE = 4096;

const IDENTIFIER = /^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$/;
const DIGEST = /^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;

/**
 * Throws InvalidArgument unless `value` is a valid identifier; `kind` names
 * what it is in the message (`namespace`, `container id`, `lease id`).
 */
export function validateIdentifier(kind: string, value: string): void {
  if (value === "") throw new InvalidArgument(`Invalid ${kind}: must not be empty`);
  if (value.length > MAX_IDENTIFIER_LENGTH) {
    throw new InvalidArgument(
      `Invalid ${kind} ${JSON.stringify(value)}: longer than ${MAX_IDENTIFIER_LENGTH} characters`,
    );
  }
  if (!IDENTIFIER.test(value)) {
    throw new InvalidArgument(
      `Invalid ${kind} ${
        JSON.stringify(value)
      }: must be letters and digits joined by single ".", "_" or "-"`,
    );
  }
}

const encoder = new TextEncoder();

/** Throws InvalidArgument when a label is empty-keyed or too large. */
export function validateLabels(labels: Record<string, string>): void {
  for (const [key, value] of Object.entries(labels)) {
    if (key === "") throw new InvalidArgument("Invalid label: the key must not be empty");
    if (typeof value !== "string") {
      throw new InvalidArgument(`Invalid label ${JSON.stringify(key)}: the value must be a string`);
    }
    const size = encoder.encode(key).length + encoder.encode(value).length;
    if (size > MAX_LABEL_SIZE) {
      throw new InvalidArgument(
        `Invalid label ${
          JSON.stringify(key.slice(0, 64))
        }: key and value take ${size} bytes, more than ${MAX_LABEL_SIZE}`,
      );
    }
  }
}

/** True when `value` is a digest tug accepts (sha256 or sha512, lowercase hex, as the OCI image spec registers them). */
export function isDigest(value: string): boolean {
  return DIGEST.test(value);
}

/** Throws InvalidArgument unless `value` is a digest tug accepts. */
export function validateDigest(value: string): void {
  if (!isDigest(value)) throw new InvalidArgument(`Invalid digest ${JSON.stringify(value)}`);
}

/** Throws InvalidArgument unless `desc` has a media type, a valid digest and a size. */
export function validateDescriptor(desc: Descriptor): void {
  if (typeof desc !== "object" || desc === null) {
    throw new InvalidArgument("Invalid descriptor: not an object");
  }
  if (typeof desc.mediaType !== "string" || desc.mediaType === "") {
    throw new InvalidArgument("Invalid descriptor: the media type must not be empty");
  }
  validateDigest(desc.digest);
  if (!Number.isSafeInteger(desc.size) || desc.size < 0) {
    throw new InvalidArgument(`Invalid descriptor ${desc.digest}: bad size ${String(desc.size)}`);
  }
}
