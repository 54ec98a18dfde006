/**
 * Resolving paths inside a container's root without ever leaving it: every
 * symlink met on the way is resolved against the root (an absolute target
 * restarts at the root, `..` stops at the root), the way securejoin does it
 * for runc. Synchronous and Syscall-only: it runs in the container's init.
 *
 * @module
 */

import { ERRNO, S_IFDIR, S_IFLNK, S_IFMT } from "../ffi/constants.ts";
import type { Syscall } from "../ffi/syscall.ts";
import { SyscallError } from "../ffi/syscall.ts";

const MAX_SYMLINKS = 255;

function components(path: string): string[] {
  return path.split("/").filter((c) => c !== "" && c !== ".");
}

/** Joins components under root. */
function under(root: string, parts: readonly string[]): string {
  const base = root === "/" ? "" : root.replace(/\/+$/, "");
  return parts.length === 0 ? (base || "/") : `${base}/${parts.join("/")}`;
}

/**
 * The host path of `path` taken inside `root`, with every existing symlink on
 * the way resolved inside `root`. Missing components are kept lexically
 * (`..` still cannot climb above the root).
 *
 * @example
 * ```ts
 * resolveInRoot(sys, "/bundle/rootfs", "/etc/../proc"); // "/bundle/rootfs/proc"
 * ```
 */
export function resolveInRoot(sys: Syscall, root: string, path: string): string {
  const resolved: string[] = [];
  const pending = components(path);
  let links = 0;
  let missing = false;
  while (pending.length > 0) {
    const part = pending.shift()!;
    if (part === "..") {
      resolved.pop();
      continue;
    }
    if (missing) {
      resolved.push(part);
      continue;
    }
    const candidate = under(root, [...resolved, part]);
    let mode: number;
    try {
      mode = sys.stat(candidate, false).mode;
    } catch (err) {
      if (
        err instanceof SyscallError && (err.errnoName === "ENOENT" || err.errnoName === "ENOTDIR")
      ) {
        missing = true;
        resolved.push(part);
        continue;
      }
      throw err;
    }
    if ((mode & S_IFMT) !== S_IFLNK) {
      resolved.push(part);
      continue;
    }
    if (++links > MAX_SYMLINKS) {
      throw new SyscallError("resolve", ERRNO.ELOOP!, JSON.stringify(path));
    }
    const target = sys.readlink(candidate);
    if (target.startsWith("/")) resolved.length = 0;
    pending.unshift(...components(target));
  }
  return under(root, resolved);
}

/**
 * Creates `path` inside `root` and its missing parents as directories, never
 * following a symlink out of the root. Returns the resolved host path.
 */
export function mkdirAllInRoot(sys: Syscall, root: string, path: string, mode = 0o755): string {
  const target = resolveInRoot(sys, root, path);
  const rootPrefix = root === "/" ? "" : root.replace(/\/+$/, "");
  const rel = components(target.slice(rootPrefix.length));
  let current = rootPrefix;
  for (const part of rel) {
    current = `${current}/${part}`;
    try {
      const st = sys.stat(current, false);
      if ((st.mode & S_IFMT) !== S_IFDIR) {
        throw new SyscallError("mkdir", ERRNO.ENOTDIR!, JSON.stringify(current));
      }
    } catch (err) {
      if (!(err instanceof SyscallError) || err.errnoName !== "ENOENT") throw err;
      try {
        sys.mkdir(current, mode);
      } catch (e) {
        if (!(e instanceof SyscallError) || e.errnoName !== "EEXIST") throw e;
      }
    }
  }
  return target;
}

/** True when `path` exists (without following a final symlink). */
export function existsNoFollow(sys: Syscall, path: string): boolean {
  try {
    sys.stat(path, false);
    return true;
  } catch (err) {
    if (
      err instanceof SyscallError && (err.errnoName === "ENOENT" || err.errnoName === "ENOTDIR")
    ) return false;
    throw err;
  }
}

/** The file type bits of `path` (following symlinks), or undefined when it does not exist. */
export function fileType(sys: Syscall, path: string): number | undefined {
  try {
    return sys.stat(path, true).mode & S_IFMT;
  } catch (err) {
    if (
      err instanceof SyscallError && (err.errnoName === "ENOENT" || err.errnoName === "ENOTDIR")
    ) return undefined;
    throw err;
  }
}
