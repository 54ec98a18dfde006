/**
 * The types of tug's cgroup managers: the {@link CgroupManager} interface the
 * runtime calls, the statistics it reads, and the layout of the host's cgroup
 * hierarchies.
 *
 * @module
 */

import type { LinuxResources } from "../spec.ts";

export type { LinuxResources };

/** The cgroup hierarchies of a host and where they are mounted. */
export interface CgroupLayout {
  /** "v1": only v1 hierarchies; "v2": one unified hierarchy; "hybrid": v1 hierarchies plus a unified mount without the resource controllers. */
  mode: "v1" | "v2" | "hybrid";
  /** The directory the hierarchies are mounted under (`/sys/fs/cgroup`). */
  root: string;
  /** v1 hierarchies by controller ("memory", "cpu", "name=systemd"); co-mounted controllers share one mount. */
  v1: Record<string, CgroupMount>;
  /** The unified (v2) hierarchy, when one is mounted. */
  unified?: CgroupMount;
}

/** One mounted cgroup hierarchy. */
export interface CgroupMount {
  /** Where it is mounted. */
  mountpoint: string;
  /** The cgroup the mount shows at its mount point (`/` unless the mount is a bind of a sub-cgroup). */
  root: string;
  /** v1: the controllers of the hierarchy; v2: the controllers listed in the root's cgroup.controllers. */
  controllers: string[];
}

/** Resource usage of a cgroup, read from its control files. */
export interface CgroupStats {
  cpu: {
    /** Total CPU time, nanoseconds. */
    usageNs: number;
    /** CPU time in user mode, nanoseconds. */
    userNs: number;
    /** CPU time in kernel mode, nanoseconds. */
    systemNs: number;
    /** Enforcement periods that elapsed (CFS bandwidth control). */
    periods: number;
    /** Periods in which the cgroup was throttled. */
    throttledPeriods: number;
    /** Total time throttled, nanoseconds. */
    throttledNs: number;
  };
  memory: {
    /** Current usage in bytes (including page cache). */
    usage: number;
    /** Peak usage in bytes (0 when the kernel does not track it). */
    maxUsage: number;
    /** The limit in bytes, or null when there is none. */
    limit: number | null;
    /** Page cache (v1 `total_cache`, v2 `file`). */
    cache: number;
    /** Anonymous memory and swap cache (v1 `total_rss`, v2 `anon`). */
    rss: number;
    /** File-backed memory (v1 active + inactive file, v2 `file`). */
    file: number;
    /** Anonymous memory (v1 active + inactive anon, v2 `anon`). */
    anon: number;
    /** Swap in use, bytes (v1: memsw usage minus usage). */
    swap: number;
    /** How often the limit was hit (v1 `memory.failcnt`, v2 `memory.events` max). */
    failcnt: number;
  };
  pids: {
    current: number;
    /** The limit, or null when there is none. */
    limit: number | null;
  };
  io: {
    readBytes: number;
    writeBytes: number;
    readOps: number;
    writeOps: number;
  };
  /** Processes the OOM killer killed in this cgroup. */
  oomKills: number;
}

/**
 * A container's cgroup: created before the container's process starts,
 * entered by that process, limited, observed, frozen, and removed.
 */
export interface CgroupManager {
  readonly version: 1 | 2;
  /**
   * Absolute directories this container's cgroup occupies: one per v1
   * controller (keyed "memory", "cpu", …, "name=systemd", plus "unified" on
   * a hybrid host), or `{ unified: dir }` on v2.
   */
  paths(): Record<string, string>;
  /**
   * Makes the cgroup's directories (parents as needed). v1: copies
   * cpuset.cpus and cpuset.mems from the parent where they are empty. v2:
   * enables the root's controllers in every ancestor's
   * cgroup.subtree_control. On failure removes what it made.
   */
  create(): void;
  /**
   * Writes the limits in `resources`. Every value is checked before the first
   * write: a bad one throws InvalidArgument naming its key. When this is the
   * first apply() after create() on this manager and it fails, the
   * directories create() made are removed.
   */
  apply(resources: LinuxResources): void;
  /**
   * Moves the calling process into the cgroup (writes "0" to each
   * cgroup.procs). Safe in a forked child: synchronous, only Syscall calls.
   */
  enter(): void;
  /** Pids of every process in the cgroup and its descendants. */
  pids(): number[];
  /** Sends `signal` to every process in the cgroup (SIGKILL uses cgroup.kill when the kernel has it). */
  signalAll(signal: number): void;
  /** Freezes every process in the cgroup and waits until they are frozen. */
  freeze(): void;
  /** Thaws the cgroup and waits until it is thawed. */
  thaw(): void;
  /** True when the cgroup is frozen (or freezing). */
  frozen(): boolean;
  /** Reads cpu, memory, pids and io usage. */
  stats(): CgroupStats;
  /** How many processes the OOM killer killed in this cgroup. */
  oomKillCount(): number;
  /**
   * Removes the cgroup's directories bottom-up, nested child cgroups too,
   * retrying briefly while exiting processes leave them busy. Idempotent.
   */
  destroy(): void;
}
