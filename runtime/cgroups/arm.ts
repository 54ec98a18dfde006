/**
 * Arming the kernel's slow path for cgroup attaches ahead of need, so that a
 * container's init joins its cgroup without waiting.
 *
 * @module
 */

import { writeAllAsync } from "../../ffi/async_io.ts";
import { O_CLOEXEC, O_WRONLY } from "../../ffi/constants.ts";
import { libcSyscall } from "../../ffi/libc.ts";
import { detectCgroups, ownCgroupDir, parseProcCgroup } from "./paths.ts";

/**
 * Starts the kernel's slow path for cgroup attaches early. The first write to
 * any cgroup.procs waits for an RCU grace period (6–15 ms here: the
 * cgroup_threadgroup_rwsem switches to writer mode while holding
 * cgroup_mutex), and writes until about one grace period after the last one
 * are fast. Writing our own pid into the cgroup we are already in moves
 * nothing, so do that, off the main thread (a nonblocking FFI write:
 * Deno.writeTextFile would first load Deno's stream code, ~7 ms). Meanwhile
 * a mkdir in any cgroup hierarchy waits for the mutex, so arm before the work
 * that does not need cgroups (reading the bundle, forking the init).
 *
 * Who arms: `tug runtime create|run` as soon as it knows its command; the
 * daemon when a container is created or started, so that the shim's create
 * finds the lock switched; createContainer itself otherwise. The lock is
 * global: any process's write arms it for all. Never fails; resolves when the
 * write is done.
 */
export function armCgroupAttach(): Promise<void> {
  try {
    const sys = libcSyscall();
    const dir = ownCgroupDir(
      detectCgroups(),
      parseProcCgroup(Deno.readTextFileSync("/proc/self/cgroup")),
    );
    if (dir === undefined) return Promise.resolve();
    const fd = sys.open(`${dir}/cgroup.procs`, O_WRONLY | O_CLOEXEC);
    return writeAllAsync(fd, new TextEncoder().encode(String(Deno.pid))).then(
      () => sys.close(fd),
      () => sys.close(fd),
    );
  } catch {
    return Promise.resolve();
  }
}
