/**
 * Cgroups for tug's OCI runtime: {@link cgroupManager} picks the v1 or v2
 * manager for the host, resolves the container's `cgroupsPath` in each
 * hierarchy (runc's cgroupfs driver semantics), and returns a
 * {@link CgroupManager} that creates, limits, enters, freezes, measures and
 * removes the container's cgroup.
 *
 * Hosts: pure v2 uses the v2 manager; v1 and hybrid (v1 controllers plus a
 * unified mount, as on this project's machines) use the v1 manager, which on
 * hybrid also joins the unified hierarchy.
 *
 * @example
 * ```ts
 * const cg = cgroupManager({ id: "web", cgroupsPath: spec.linux?.cgroupsPath });
 * cg.create();
 * cg.apply(spec.linux?.resources ?? {});
 * const pid = sys.fork();
 * if (pid === 0) { cg.enter(); sys.execve(...); }
 * // …
 * cg.signalAll(9);
 * cg.destroy();
 * ```
 *
 * @module
 */

import type { Syscall } from "../../ffi/syscall.ts";
import { libcSyscall } from "../../ffi/libc.ts";
import { InvalidArgument } from "../../errors.ts";
import {
  cleanCgroupsPath,
  detectCgroups,
  parseProcCgroup,
  resolveCgroupPaths,
  type ResolvedPaths,
} from "./paths.ts";
import type { CgroupLayout, CgroupManager } from "./types.ts";
import { CgroupV1Manager } from "./v1.ts";
import { CgroupV2Manager } from "./v2.ts";

export type {
  CgroupLayout,
  CgroupManager,
  CgroupMount,
  CgroupStats,
  LinuxResources,
} from "./types.ts";
export {
  cleanCgroupsPath,
  DEFAULT_CGROUP_ROOT,
  detectCgroups,
  type DetectOptions,
  parseProcCgroup,
  type ProcessCgroups,
  resolveCgroupPaths,
  type ResolvedPaths,
} from "./paths.ts";
export { blkioToIoWeight, sharesToWeight, swapToV2 } from "./_validate.ts";
export {
  deviceFilterProgram,
  type DeviceRule,
  type DeviceRuleSet,
  emulateDeviceRules,
  normalizeDeviceRules,
} from "./devices.ts";
export type { ManagerOptions } from "./_common.ts";
export { CgroupV1Manager } from "./v1.ts";
export { CgroupV2Manager } from "./v2.ts";

/** Options for {@link cgroupManager}. */
export interface CgroupManagerOptions {
  /** The container id: names the default cgroup `tug/<id>`. */
  id: string;
  /** The spec's `linux.cgroupsPath`: absolute (from each hierarchy's root) or relative (to the runtime's own cgroup). */
  cgroupsPath?: string;
  /** The system-call layer (default: glibc). */
  sys?: Syscall;
  /** Where the hierarchies are mounted (default `/sys/fs/cgroup`; tests pass a temporary directory). */
  root?: string;
  /** Contents of /proc/self/cgroup (default: read it). */
  selfCgroup?: string;
  /** Contents of /proc/self/mountinfo (default: read it). */
  mountinfo?: string;
  /**
   * The directories an earlier manager's paths() returned (recorded at create
   * time), to reopen that cgroup from another process, whose own cgroup may
   * differ: no path is resolved. `id` and `cgroupsPath` should still be the
   * ones it was created with, so that destroy() knows which parents it may
   * remove once empty.
   */
  paths?: Record<string, string>;
  /** A layout found earlier with {@link detectCgroups}, to skip detection. */
  layout?: CgroupLayout;
  /**
   * Receives a message for each requested resource this host cannot apply
   * and that is skipped (for example memory.swappiness on v2). Default:
   * printed on stderr as `warning: …`.
   */
  warn?: (message: string) => void;
}

/**
 * The cgroup manager for a container on this host. Resolves the container's
 * directories (see {@link resolveCgroupPaths}); an empty `cgroupsPath` means
 * the relative path `tug/<id>`, so containers nest under whoever runs tug.
 * Throws InvalidArgument for a path with `..` or a bad id.
 */
export function cgroupManager(options: CgroupManagerOptions): CgroupManager {
  const layout = options.layout ?? detectCgroups({
    ...(options.root !== undefined ? { root: options.root } : {}),
    ...(options.mountinfo !== undefined ? { mountinfo: options.mountinfo } : {}),
  });
  const inner = cleanCgroupsPath(options.cgroupsPath, options.id);
  let paths: ResolvedPaths;
  if (options.paths) {
    const { unified, ...v1 } = options.paths;
    for (const dir of Object.values(options.paths)) {
      if (!dir.startsWith("/") || dir.split("/").includes("..")) {
        throw new InvalidArgument(
          `Reopen cgroup ${JSON.stringify(dir)}: not an absolute path without ".."`,
        );
      }
    }
    paths = unified === undefined ? { inner, v1 } : { inner, v1, unified };
  } else {
    const self = parseProcCgroup(options.selfCgroup ?? Deno.readTextFileSync("/proc/self/cgroup"));
    paths = resolveCgroupPaths(inner, { layout, self });
  }
  const sys = options.sys ?? libcSyscall();
  const warn = options.warn ?? ((message: string) => console.error(`warning: ${message}`));
  const managerOptions = { sys, layout, paths, warn };
  return layout.mode === "v2"
    ? new CgroupV2Manager(managerOptions)
    : new CgroupV1Manager(managerOptions);
}
