/**
 * Capability names → 64-bit masks, and applying a process's capability sets
 * in the order runc uses: drop the bounding set, keep caps across the uid
 * change, change user, then set effective/permitted/inheritable and raise
 * the ambient ones.
 *
 * @module
 */

import {
  CAPABILITIES,
  PR_CAP_AMBIENT,
  PR_CAP_AMBIENT_CLEAR_ALL,
  PR_CAP_AMBIENT_RAISE,
  PR_CAPBSET_DROP,
} from "../ffi/constants.ts";
import type { Syscall } from "../ffi/syscall.ts";
import type { Capabilities } from "./spec.ts";

/** Capability sets as masks, ready to apply. */
export interface CapabilityMasks {
  bounding: bigint;
  effective: bigint;
  permitted: bigint;
  inheritable: bigint;
  ambient: bigint;
}

/** The highest capability number the running kernel knows. */
export function lastCap(): number {
  try {
    return Number(Deno.readTextFileSync("/proc/sys/kernel/cap_last_cap").trim());
  } catch {
    return CAPABILITIES.length - 1;
  }
}

/**
 * Masks for the OCI capability lists. Names the kernel does not know are
 * returned in `unknown` (runc warns and ignores them, for profiles written for
 * newer kernels); names that are not capabilities at all are too.
 */
export function capabilityMasks(
  caps: Capabilities,
  last = lastCap(),
): { masks: CapabilityMasks; unknown: string[] } {
  const unknown = new Set<string>();
  const mask = (names: readonly string[] = []) => {
    let m = 0n;
    for (const name of names) {
      const n = CAPABILITIES.indexOf(
        name.toUpperCase().startsWith("CAP_") ? name.toUpperCase() : `CAP_${name.toUpperCase()}`,
      );
      if (n < 0 || n > last) unknown.add(name);
      else m |= 1n << BigInt(n);
    }
    return m;
  };
  return {
    masks: {
      bounding: mask(caps.bounding),
      effective: mask(caps.effective),
      permitted: mask(caps.permitted),
      inheritable: mask(caps.inheritable),
      ambient: mask(caps.ambient),
    },
    unknown: [...unknown],
  };
}

/** Capability names in a mask, in kernel order. */
export function capabilityNames(mask: bigint): string[] {
  return CAPABILITIES.filter((_, i) => (mask >> BigInt(i)) & 1n);
}

/** Drops every capability outside `bounding` from the bounding set. */
export function dropBoundingSet(sys: Syscall, bounding: bigint, last = lastCap()): void {
  for (let cap = 0; cap <= last; cap++) {
    if (!((bounding >> BigInt(cap)) & 1n)) sys.prctl(PR_CAPBSET_DROP, cap);
  }
}

/**
 * Sets effective/permitted/inheritable, then raises the ambient set. The
 * kernel only raises an ambient capability that is both permitted and
 * inheritable; others are skipped, as runc does (`runc spec` itself lists
 * ambient capabilities without inheritable ones).
 */
export function applyCapabilities(sys: Syscall, masks: CapabilityMasks, last = lastCap()): void {
  sys.capset({
    effective: masks.effective,
    permitted: masks.permitted,
    inheritable: masks.inheritable,
  });
  sys.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL);
  const raisable = masks.ambient & masks.permitted & masks.inheritable;
  for (let cap = 0; cap <= last; cap++) {
    if ((raisable >> BigInt(cap)) & 1n) sys.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap);
  }
}
