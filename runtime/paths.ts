/**
 * Paths inside a container's root, walked through file descriptors so that
 * nothing done to the rootfs while the container is set up (a directory
 * swapped for a symlink to a host path, CVE-2021-30465 and CVE-2024-45310)
 * can lead outside it. Every lookup starts at an fd of the root:
 * openat2(2) with RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS, or, on kernels
 * without it, one component at a time with O_PATH | O_NOFOLLOW and every
 * symlink resolved by hand against the root (an absolute target restarts at
 * the root, `..` stops there). Missing components are made relative to the
 * fd of their parent. Callers get an O_PATH fd of the result and act on it
 * (mount onto {@link fdPath}, mknodat and symlinkat relative to it), never on
 * a path string the kernel would walk again.
 *
 * Synchronous and Syscall-only: it runs in the container's init.
 *
 * @module
 */

import {
  ERRNO,
  O_CLOEXEC,
  O_CREAT,
  O_DIRECTORY,
  O_EXCL,
  O_NOFOLLOW,
  O_PATH,
  O_WRONLY,
  RESOLVE_IN_ROOT,
  RESOLVE_NO_MAGICLINKS,
  S_IFDIR,
  S_IFLNK,
  S_IFMT,
} from "../ffi/constants.ts";
import type { Syscall } from "../ffi/syscall.ts";
import { SyscallError } from "../ffi/syscall.ts";

const MAX_SYMLINKS = 255;
/** How often a walk makes a missing component and finds it gone again before giving up. */
const MAX_RETRIES = 32;

/** A container's root, open: lookups inside it start at `fd`. */
export interface Root {
  sys: Syscall;
  /** O_PATH fd of the root directory. */
  fd: number;
  /** Resolve component by component even where openat2(2) exists (set once openat2 is found missing). */
  walk: boolean;
  /** The root's path as the kernel names it, once {@link pathInRoot} has asked. */
  path?: string;
}

/** Options of {@link openRoot}. */
export interface RootOptions {
  /** Walk component by component instead of using openat2(2), as on kernels before 5.6. */
  walk?: boolean;
}

/** Opens `rootfs` (a host path) as the root of later lookups. Close it with {@link closeRoot}. */
export function openRoot(sys: Syscall, rootfs: string, options: RootOptions = {}): Root {
  const fd = sys.open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
  return { sys, fd, walk: options.walk === true };
}

/** Closes what {@link openRoot} opened. */
export function closeRoot(root: Root): void {
  root.sys.close(root.fd);
}

/** The path through which the kernel reaches what `fd` is open on (for mount(2) and statfs(2)). */
export function fdPath(fd: number): string {
  return `/proc/self/fd/${fd}`;
}

/**
 * Where `fd`, opened inside the root, is: its path inside the root ("/" for
 * the root itself), as the kernel names the object (readlink of its
 * `/proc/self/fd` entry), so with every symlink the lookup followed already
 * followed. Throws when the kernel places it outside the root.
 */
export function pathInRoot(root: Root, fd: number): string {
  const { sys } = root;
  root.path ??= sys.readlink(fdPath(root.fd));
  const path = sys.readlink(fdPath(fd));
  if (path === root.path) return "/";
  const prefix = root.path === "/" ? "/" : `${root.path}/`;
  if (!path.startsWith(prefix)) {
    throw new Error(`${JSON.stringify(path)} is outside the container's root ${root.path}`);
  }
  return path.slice(prefix.length - 1);
}

/** Options of the lookups. */
export interface LookupOptions {
  /** Follow a symlink in the last component (inside the root); false returns the symlink itself. Default true. */
  follow?: boolean;
}

function components(path: string): string[] {
  return path.split("/").filter((c) => c !== "" && c !== ".");
}

function errnoOf(err: unknown): string | undefined {
  return err instanceof SyscallError ? err.errnoName : undefined;
}

/**
 * Opens `path` inside the root with `flags` (default O_PATH) and returns the
 * fd. Symlinks on the way are resolved inside the root; a missing component
 * is ENOENT naming `path`.
 *
 * @example
 * ```ts
 * const root = openRoot(sys, "/bundle/rootfs");
 * const fd = openInRoot(root, "/etc/../proc"); // the rootfs's proc, whatever links lie on the way
 * ```
 */
export function openInRoot(
  root: Root,
  path: string,
  flags = O_PATH,
  options: LookupOptions = {},
): number {
  const follow = options.follow !== false;
  if (!root.walk) {
    const how = flags | O_CLOEXEC | (follow ? 0 : O_NOFOLLOW);
    const rel = components(path).join("/") || ".";
    for (let attempt = 0;; attempt++) {
      try {
        return root.sys.openat2(root.fd, rel, how, 0, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
      } catch (err) {
        const errno = errnoOf(err);
        if (errno === "ENOSYS") {
          root.walk = true; // a kernel before 5.6
          break;
        }
        // EAGAIN: something was renamed or mounted during a lookup with "..": look again, then walk.
        if (errno === "EAGAIN" && attempt < 3) continue;
        if (errno === "EAGAIN") break;
        throw named(err, "open", path);
      }
    }
  }
  const fd = walk(root, path, { follow });
  if ((flags & O_PATH) !== 0) return fd;
  try {
    // The walk found the object without opening it; open it now through its own fd.
    if ((flags & O_DIRECTORY) !== 0) return root.sys.openat(fd, ".", flags | O_CLOEXEC);
    return root.sys.open(fdPath(fd), flags | O_CLOEXEC);
  } catch (err) {
    throw named(err, "open", path);
  } finally {
    root.sys.close(fd);
  }
}

/**
 * Makes the directory `path` inside the root and its missing parents (mode
 * `mode`) and returns an O_PATH fd of it. An existing non-directory is
 * ENOTDIR; with `follow` false, whatever the last component is (a symlink, a
 * file) is returned as it is, for the caller to check.
 */
export function mkdirAllInRoot(
  root: Root,
  path: string,
  options: LookupOptions & { mode?: number } = {},
): number {
  return makeInRoot(root, path, "dir", options.mode ?? 0o755, options.follow !== false);
}

/**
 * Makes an empty file at `path` inside the root unless something is there
 * already (its parents as directories), and returns an O_PATH fd of what is
 * there: a mount point for a bind mount of a file.
 */
export function createFileInRoot(root: Root, path: string, mode = 0o644): number {
  return makeInRoot(root, path, "file", mode, true);
}

/**
 * The directory that holds `path` inside the root (made when missing) and
 * the last component's name, for mknodat, symlinkat and unlinkat relative to
 * it. The caller closes `dir`.
 */
export function parentInRoot(root: Root, path: string): { dir: number; name: string } {
  const parts = components(path);
  const name = parts.pop();
  if (name === undefined || name === "..") {
    throw new SyscallError("open", ERRNO.EINVAL!, `${JSON.stringify(path)}: no file name`);
  }
  return { dir: mkdirAllInRoot(root, `/${parts.join("/")}`), name };
}

/** True when `name` exists in the directory `dirfd` (without following a final symlink). */
export function existsAt(sys: Syscall, dirfd: number, name: string): boolean {
  try {
    sys.stat(name, false, dirfd);
    return true;
  } catch (err) {
    if (errnoOf(err) === "ENOENT") return false;
    throw err;
  }
}

function makeInRoot(
  root: Root,
  path: string,
  kind: "dir" | "file",
  mode: number,
  follow: boolean,
): number {
  let fd: number | undefined;
  if (!root.walk) {
    try {
      fd = openInRoot(root, path, O_PATH, { follow });
    } catch (err) {
      if (errnoOf(err) !== "ENOENT") throw err;
    }
  }
  fd ??= walk(root, path, { follow, create: kind, mode });
  if (kind === "dir") {
    const type = root.sys.fstat(fd).mode & S_IFMT;
    if (type !== S_IFDIR && follow) {
      root.sys.close(fd);
      throw new SyscallError("mkdir", ERRNO.ENOTDIR!, JSON.stringify(path));
    }
  }
  return fd;
}

/**
 * A SyscallError made to name `path`, the path inside the container, where the
 * call named an fd, a `/proc/self/fd` path or a bare name (`call` defaults to
 * the failed call's). Other errors are returned as they are.
 */
export function named(err: unknown, call: string | undefined, path: string): unknown {
  if (!(err instanceof SyscallError)) return err;
  return new SyscallError(call ?? err.syscall, err.errno, JSON.stringify(path), { cause: err });
}

/**
 * The walk without openat2: one component at a time, each opened O_PATH |
 * O_NOFOLLOW relative to the fd of its parent, symlinks read and resolved by
 * hand. With `create`, a missing component is made (a directory, or for the
 * last one with "file", an empty file with O_CREAT | O_EXCL | O_NOFOLLOW) and
 * then looked at again like any other: if someone put a symlink there in
 * between, it is resolved inside the root too.
 */
function walk(
  root: Root,
  path: string,
  options: { follow: boolean; create?: "dir" | "file"; mode?: number },
): number {
  const { sys } = root;
  const pending = components(path);
  // fds of the directories walked below the root; `..` closes the last one (lexically, never above the root)
  const stack: number[] = [];
  const top = () => stack.at(-1) ?? root.fd;
  let links = 0;
  let retries = 0; // makes of the current component
  try {
    while (pending.length > 0) {
      const part = pending.shift()!;
      if (part === "..") {
        if (stack.length > 0) sys.close(stack.pop()!);
        continue;
      }
      const last = pending.length === 0;
      let fd: number;
      try {
        fd = sys.openat(top(), part, O_PATH | O_NOFOLLOW | O_CLOEXEC);
      } catch (err) {
        if (errnoOf(err) !== "ENOENT" || !options.create) throw named(err, "open", path);
        if (pending[0] === "..") {
          // A missing name followed by "..": nothing to make, the two cancel out (as securejoin has it).
          pending.shift();
          continue;
        }
        if (++retries > MAX_RETRIES) {
          throw new SyscallError("mkdir", ERRNO.ELOOP!, JSON.stringify(path));
        }
        makeAt(
          sys,
          top(),
          part,
          last && options.create === "file" ? "file" : "dir",
          options.mode,
          path,
        );
        pending.unshift(part);
        continue;
      }
      retries = 0;
      let type: number;
      try {
        type = sys.fstat(fd).mode & S_IFMT;
      } catch (err) {
        sys.close(fd);
        throw named(err, "stat", path);
      }
      if (type === S_IFLNK && (!last || options.follow)) {
        let target: string;
        try {
          target = sys.readlinkat(fd, "");
        } finally {
          sys.close(fd);
        }
        if (++links > MAX_SYMLINKS) {
          throw new SyscallError("open", ERRNO.ELOOP!, JSON.stringify(path));
        }
        if (target.startsWith("/")) {
          while (stack.length > 0) sys.close(stack.pop()!);
        }
        pending.unshift(...components(target));
        continue;
      }
      if (!last && type !== S_IFDIR) {
        sys.close(fd);
        throw new SyscallError("open", ERRNO.ENOTDIR!, JSON.stringify(path));
      }
      stack.push(fd);
    }
    return stack.pop() ?? sys.openat(root.fd, ".", O_PATH | O_CLOEXEC);
  } finally {
    for (const fd of stack) sys.close(fd);
  }
}

/** Makes `name` in `dirfd`; one that appeared meanwhile is fine (the walk looks at it again). */
function makeAt(
  sys: Syscall,
  dirfd: number,
  name: string,
  kind: "dir" | "file",
  mode = kind === "dir" ? 0o755 : 0o644,
  path: string,
): void {
  try {
    if (kind === "dir") {
      sys.mkdirat(dirfd, name, mode);
    } else {
      sys.close(
        sys.openat(dirfd, name, O_CREAT | O_EXCL | O_NOFOLLOW | O_WRONLY | O_CLOEXEC, mode),
      );
    }
  } catch (err) {
    if (errnoOf(err) !== "EEXIST") throw named(err, kind === "dir" ? "mkdir" : "create", path);
  }
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
