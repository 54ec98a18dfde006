/**
 * Performing the Mount records snapshotters return. Snapshotters never mount;
 * whoever needs the tree (the runtime for a container's rootfs, a test) calls
 * {@link mountAll} and later {@link unmountAll}.
 *
 * The kernel reads mount options from one page (4096 bytes here), so an
 * overlay with many lower layers can exceed it. Like containerd's mount
 * package, `mountAll` then rewrites the directories relative to their common
 * parent directory (`lowerdir=12/fs:11/fs:…`) and performs that mount(2) in a
 * forked child that first changes into that directory, so the calling
 * process's working directory is never touched. If even the relative form
 * does not fit, the error says so.
 *
 * @module
 */

import {
  MNT_DETACH,
  MS_BIND,
  MS_NOATIME,
  MS_NODEV,
  MS_NOEXEC,
  MS_NOSUID,
  MS_RDONLY,
  MS_REC,
  MS_RELATIME,
  MS_REMOUNT,
  MS_STRICTATIME,
  MS_SYNCHRONOUS,
} from "../../ffi/constants.ts";
import { libcSyscall } from "../../ffi/libc.ts";
import { exitCodeOf, type Syscall, SyscallError } from "../../ffi/syscall.ts";
import { InvalidArgument } from "../../errors.ts";
import type { Mount } from "../types.ts";

/** Options for {@link mountAll} and {@link unmountAll}. */
export interface MountOptions {
  /** The system-call layer (default: glibc). */
  sys?: Syscall;
  /** The kernel's limit on the mount data string, in bytes including the final NUL (default: the page size, 4096). */
  pageSize?: number;
}

/** option → [clear instead of set, flag] */
const FLAGS: Readonly<Record<string, readonly [boolean, number]>> = {
  ro: [false, MS_RDONLY],
  rw: [true, MS_RDONLY],
  bind: [false, MS_BIND],
  rbind: [false, MS_BIND | MS_REC],
  nosuid: [false, MS_NOSUID],
  suid: [true, MS_NOSUID],
  nodev: [false, MS_NODEV],
  dev: [true, MS_NODEV],
  noexec: [false, MS_NOEXEC],
  exec: [true, MS_NOEXEC],
  noatime: [false, MS_NOATIME],
  relatime: [false, MS_RELATIME],
  strictatime: [false, MS_STRICTATIME],
  sync: [false, MS_SYNCHRONOUS],
  async: [true, MS_SYNCHRONOUS],
  defaults: [false, 0],
};

/** A Mount's options split into mount(2) flags and the filesystem's data string. */
export function parseOptions(options: readonly string[]): { flags: number; data: string[] } {
  let flags = 0;
  const data: string[] = [];
  for (const o of options) {
    const f = FLAGS[o];
    if (f === undefined) data.push(o);
    else if (f[0]) flags &= ~f[1];
    else flags |= f[1];
  }
  return { flags, data };
}

function q(s: string): string {
  return JSON.stringify(s);
}

/** The longest common directory of absolute paths ("/" at worst). */
function commonDir(paths: string[]): string {
  let common = paths[0]!.split("/");
  for (const p of paths.slice(1)) {
    const parts = p.split("/");
    let i = 0;
    while (i < common.length && i < parts.length && common[i] === parts[i]) i++;
    common = common.slice(0, i);
  }
  // Every path must stay a proper descendant: a lower directory cannot be "".
  if (paths.some((p) => p.split("/").length === common.length)) common = common.slice(0, -1);
  return common.join("/") || "/";
}

const DIR_KEYS = ["lowerdir=", "upperdir=", "workdir="];

/**
 * Overlay options with their directories (`lowerdir=`, `upperdir=`,
 * `workdir=`) made relative to their longest common directory `dir`, or
 * undefined when they are not all absolute.
 */
export function relativeOverlayOptions(
  data: readonly string[],
): { dir: string; data: string[] } | undefined {
  const paths: string[] = [];
  for (const o of data) {
    const key = DIR_KEYS.find((k) => o.startsWith(k));
    if (key === undefined) continue;
    const values = key === "lowerdir=" ? o.slice(key.length).split(":") : [o.slice(key.length)];
    for (const v of values) {
      if (!v.startsWith("/")) return undefined;
      paths.push(v);
    }
  }
  if (paths.length === 0) return undefined;
  const dir = commonDir(paths);
  const rel = (p: string) => (dir === "/" ? p.slice(1) : p.slice(dir.length + 1));
  return {
    dir,
    data: data.map((o) => {
      const key = DIR_KEYS.find((k) => o.startsWith(k));
      if (key === undefined) return o;
      const values = key === "lowerdir=" ? o.slice(key.length).split(":") : [o.slice(key.length)];
      return key + values.map(rel).join(":");
    }),
  };
}

const encoder = new TextEncoder();

/** mount(2) run in a forked child whose working directory is `cwd`; the child's exit code is the errno. */
function mountFrom(
  sys: Syscall,
  cwd: string,
  m: Mount,
  target: string,
  flags: number,
  data: string,
): void {
  const pid = sys.fork();
  if (pid === 0) {
    let code = 0;
    try {
      sys.chdir(cwd);
      sys.mount(m.source, target, m.type, flags, data);
    } catch (err) {
      code = err instanceof SyscallError ? err.errno : 255;
    }
    sys.exit(code);
  }
  const { status } = sys.waitpid(pid, 0);
  const code = exitCodeOf(status);
  if (code !== 0) {
    throw new SyscallError("mount", code, `${q(m.source)} on ${q(target)} (from ${q(cwd)})`);
  }
}

function mountOne(sys: Syscall, m: Mount, target: string, pageSize: number): void {
  const { flags, data } = parseOptions(m.options);
  if (flags & MS_BIND) {
    sys.mount(m.source, target, null, flags & (MS_BIND | MS_REC), null);
    const extra = flags & ~(MS_BIND | MS_REC);
    // A bind mount takes its flags (read-only, …) only from a remount.
    if (extra !== 0) sys.mount(null, target, null, MS_REMOUNT | MS_BIND | extra, null);
    return;
  }
  const joined = data.join(",");
  if (encoder.encode(joined).length < pageSize) {
    sys.mount(m.source, target, m.type, flags, joined === "" ? null : joined);
    return;
  }
  const compact = m.type === "overlay" ? relativeOverlayOptions(data) : undefined;
  const short = compact?.data.join(",");
  if (compact === undefined || encoder.encode(short!).length >= pageSize) {
    throw new InvalidArgument(
      `Cannot mount ${m.type} on ${q(target)}: its options take ${
        encoder.encode(joined).length
      } bytes, more than the kernel's ${pageSize - 1}${
        compact === undefined
          ? ""
          : `, and still ${encoder.encode(short!).length} with paths relative to ${q(compact.dir)}`
      }`,
    );
  }
  mountFrom(sys, compact.dir, m, target, flags, short!);
}

/**
 * Mounts `mounts`, in order, on the existing directory `target`. When one
 * fails, the ones already made are unmounted before the error is thrown.
 */
export function mountAll(
  mounts: readonly Mount[],
  target: string,
  options: MountOptions = {},
): void {
  const sys = options.sys ?? libcSyscall();
  const pageSize = options.pageSize ?? 4096;
  let done = 0;
  try {
    for (const m of mounts) {
      mountOne(sys, m, target, pageSize);
      done++;
    }
  } catch (err) {
    for (; done > 0; done--) {
      try {
        sys.umount2(target, MNT_DETACH);
      } catch {
        // keep the first error
      }
    }
    throw err;
  }
}

/**
 * Unmounts everything mounted on `target` (stacked mounts included), until it
 * is no longer a mount point. With `detach`, lazily (MNT_DETACH).
 */
export function unmountAll(
  target: string,
  options: MountOptions & { detach?: boolean } = {},
): void {
  const sys = options.sys ?? libcSyscall();
  for (;;) {
    try {
      sys.umount2(target, options.detach ? MNT_DETACH : 0);
    } catch (err) {
      if (
        err instanceof SyscallError && (err.errnoName === "EINVAL" || err.errnoName === "ENOENT")
      ) return;
      throw err;
    }
  }
}

/**
 * Detaches every mount on `target` (MNT_DETACH) off the main thread, each
 * umount2 waiting for its grace period on a helper thread. Never fails: it
 * stops at the first umount2 that does not unmount (nothing left, or an
 * error {@link unmountAll} will meet and report).
 */
export async function detachAllAsync(target: string, options: MountOptions = {}): Promise<void> {
  const sys = options.sys ?? libcSyscall();
  while (await sys.umount2Async(target, MNT_DETACH));
}
