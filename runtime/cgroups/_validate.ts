/**
 * Checks every value of a LinuxResources before a manager writes anything,
 * so that a bad value fails with InvalidArgument naming its key and leaves
 * the cgroup as it was.
 *
 * @module
 */

import { InvalidArgument } from "../../errors.ts";
import type { LinuxResources } from "../spec.ts";
import { normalizeDeviceRules } from "./devices.ts";

function bad(key: string, value: unknown, why: string): never {
  throw new InvalidArgument(`Invalid resources.${key}: ${JSON.stringify(value)} ${why}`);
}

/** Checks that `value` (when present) is an integer no smaller than `min` and no larger than `max`. */
function integer(key: string, value: unknown, min: number, max = Infinity): void {
  if (value === undefined || value === null) return;
  if (typeof value !== "number" || !Number.isInteger(value)) bad(key, value, "is not an integer");
  if (value < min) {
    bad(
      key,
      value,
      min === -1 ? "is negative (use -1 for no limit)" : `is below the minimum ${min}`,
    );
  }
  if (value > max) bad(key, value, `is above the maximum ${max}`);
}

const CPU_LIST = /^\s*$|^\d+(-\d+)?(,\d+(-\d+)?)*$/;
const PAGE_SIZE = /^\d+[KMG]B$/;
const WORD = /^[^\s/]+$/;

/** cgroup v2 files `unified` may not write: they move or kill processes, not limit them. */
export const UNIFIED_FORBIDDEN: readonly string[] = [
  "cgroup.procs",
  "cgroup.threads",
  "cgroup.kill",
  "cgroup.freeze",
];

/** Checks a key of `resources.unified`: a plain control-file name. */
export function checkUnifiedKey(key: string, value: unknown): void {
  if (!/^[A-Za-z0-9_]+\.[A-Za-z0-9_.]+$/.test(key) || key.includes("..")) {
    bad(`unified[${JSON.stringify(key)}]`, value, "is not under a control-file name");
  }
  if (UNIFIED_FORBIDDEN.includes(key)) {
    bad(`unified[${JSON.stringify(key)}]`, value, "cannot be set: it moves or stops processes");
  }
  if (typeof value !== "string") bad(`unified[${JSON.stringify(key)}]`, value, "is not a string");
}

/**
 * Throws InvalidArgument for the first bad value in `r`. `version` adds the
 * checks that depend on the cgroup version.
 */
export function validateResources(r: LinuxResources, version: 1 | 2): void {
  const m = r.memory;
  if (m) {
    integer("memory.limit", m.limit, -1);
    integer("memory.reservation", m.reservation, -1);
    integer("memory.swap", m.swap, -1);
    integer("memory.kernelTCP", m.kernelTCP, -1);
    if (m.swappiness !== undefined && m.swappiness !== null && m.swappiness !== -1) {
      integer("memory.swappiness", m.swappiness, 0, 100);
    }
    if (m.disableOOMKiller !== undefined && typeof m.disableOOMKiller !== "boolean") {
      bad("memory.disableOOMKiller", m.disableOOMKiller, "is not a boolean");
    }
    const limit = m.limit ?? 0, swap = m.swap ?? 0;
    if (limit > 0 && swap > 0 && swap < limit) {
      bad("memory.swap", swap, `is below memory.limit ${limit} (swap counts memory plus swap)`);
    }
    if (version === 2 && swap > 0 && limit <= 0) {
      bad("memory.swap", swap, "needs a memory.limit on cgroup v2 (swap counts memory plus swap)");
    }
  }
  const c = r.cpu;
  if (c) {
    integer("cpu.shares", c.shares, 0);
    integer("cpu.quota", c.quota, -1);
    integer("cpu.period", c.period, 0);
    integer("cpu.burst", c.burst, 0);
    integer("cpu.realtimeRuntime", c.realtimeRuntime, -1);
    integer("cpu.realtimePeriod", c.realtimePeriod, 0);
    integer("cpu.idle", c.idle, 0, 1);
    for (const key of ["cpus", "mems"] as const) {
      const v = c[key];
      if (v !== undefined && (typeof v !== "string" || !CPU_LIST.test(v))) {
        bad(`cpu.${key}`, v, 'is not a list such as "0-3,6"');
      }
    }
    if (version === 2 && (c.realtimeRuntime || c.realtimePeriod)) {
      bad(
        c.realtimeRuntime ? "cpu.realtimeRuntime" : "cpu.realtimePeriod",
        c.realtimeRuntime || c.realtimePeriod,
        "cannot be set: cgroup v2 has no real-time CPU controller",
      );
    }
  }
  if (r.pids) {
    if (typeof r.pids.limit !== "number") bad("pids.limit", r.pids.limit, "is not a number");
    integer("pids.limit", r.pids.limit, -1);
  }
  const b = r.blockIO;
  if (b) {
    const weight = (key: string, v: number | undefined) => {
      if (v !== undefined && v !== 0) integer(key, v, 10, 1000);
    };
    weight("blockIO.weight", b.weight);
    weight("blockIO.leafWeight", b.leafWeight);
    (b.weightDevice ?? []).forEach((d, i) => {
      integer(`blockIO.weightDevice[${i}].major`, d.major, 0);
      integer(`blockIO.weightDevice[${i}].minor`, d.minor, 0);
      weight(`blockIO.weightDevice[${i}].weight`, d.weight);
      weight(`blockIO.weightDevice[${i}].leafWeight`, d.leafWeight);
    });
    for (
      const key of [
        "throttleReadBpsDevice",
        "throttleWriteBpsDevice",
        "throttleReadIOPSDevice",
        "throttleWriteIOPSDevice",
      ] as const
    ) {
      (b[key] ?? []).forEach((d, i) => {
        integer(`blockIO.${key}[${i}].major`, d.major, 0);
        integer(`blockIO.${key}[${i}].minor`, d.minor, 0);
        integer(`blockIO.${key}[${i}].rate`, d.rate, 0);
      });
    }
  }
  (r.hugepageLimits ?? []).forEach((h, i) => {
    if (typeof h.pageSize !== "string" || !PAGE_SIZE.test(h.pageSize)) {
      bad(`hugepageLimits[${i}].pageSize`, h.pageSize, 'is not a page size such as "2MB"');
    }
    integer(`hugepageLimits[${i}].limit`, h.limit, 0);
  });
  if (r.network) {
    integer("network.classID", r.network.classID, 0, 0xffffffff);
    (r.network.priorities ?? []).forEach((p, i) => {
      if (typeof p.name !== "string" || !WORD.test(p.name)) {
        bad(`network.priorities[${i}].name`, p.name, "is not an interface name");
      }
      integer(`network.priorities[${i}].priority`, p.priority, 0, 0xffffffff);
    });
  }
  for (const [device, limits] of Object.entries(r.rdma ?? {})) {
    if (!WORD.test(device)) bad("rdma", device, "is not a device name");
    integer(`rdma[${JSON.stringify(device)}].hcaHandles`, limits.hcaHandles, 0);
    integer(`rdma[${JSON.stringify(device)}].hcaObjects`, limits.hcaObjects, 0);
  }
  for (const [key, value] of Object.entries(r.unified ?? {})) checkUnifiedKey(key, value);
  if (r.devices) normalizeDeviceRules(r.devices);
}

/** "max" for -1 (no limit), the number otherwise: the v2 spelling of a limit. */
export function v2Limit(n: number): string {
  return n < 0 ? "max" : BigInt(n).toString();
}

/**
 * Converts OCI cpu.shares (v1, 2–262144, default 1024) to cgroup v2
 * cpu.weight (1–10000, default 100) with the quadratic mapping runc and crun
 * use since 2025 (1024 maps to 100). 0 stays 0 (unset).
 */
export function sharesToWeight(shares: number): number {
  if (shares === 0) return 0;
  if (shares <= 2) return 1;
  if (shares >= 262144) return 10000;
  const l = Math.log2(shares);
  const exponent = (l * l + 125 * l) / 612 - 7 / 34;
  return Math.ceil(Math.pow(10, exponent));
}

/** Converts a v1 blkio weight (10–1000) to a v2 io.weight (1–10000), as runc does. */
export function blkioToIoWeight(weight: number): number {
  if (weight === 0) return 0;
  return 1 + Math.floor(((weight - 10) * 9999) / 990);
}

/**
 * The v2 memory.swap.max for OCI memory.swap (memory plus swap) and
 * memory.limit: -1 for no limit, undefined when swap is not to be written.
 */
export function swapToV2(swap: number | undefined, limit: number | undefined): number | undefined {
  const s = swap ?? 0, l = limit ?? 0;
  if (l === -1 && s === 0) return -1; // no memory limit and no swap limit given: lift both
  if (s === -1) return -1;
  if (s === 0) return undefined;
  if (l <= 0) {
    throw new InvalidArgument(
      `Invalid resources.memory.swap: ${s} needs a memory.limit on cgroup v2`,
    );
  }
  if (s < l) {
    throw new InvalidArgument(`Invalid resources.memory.swap: ${s} is below memory.limit ${l}`);
  }
  return s - l;
}
