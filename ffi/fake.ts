/**
 * A recording {@link Syscall} for unit tests: it runs no system call, keeps a
 * small model of the files, mounts and processes the calls create, records
 * every call in order, and can be told to fail the Nth call (or every call to
 * a given function) with a chosen errno.
 *
 * @example
 * ```ts
 * const sys = new FakeSyscall();
 * sys.failAt(3, "EBUSY");
 * // run the code under test with `sys`, then inspect sys.calls / sys.mounts
 * ```
 *
 * @module
 */

import {
  ERRNO,
  O_DIRECTORY,
  O_NOFOLLOW,
  O_PATH,
  S_IFCHR,
  S_IFDIR,
  S_IFIFO,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
} from "./constants.ts";
import type { CapSets, FileStat, StatFs, Syscall, WaitResult, WinSize } from "./syscall.ts";
import { SyscallError } from "./syscall.ts";

/** One recorded call: the Syscall method name and its arguments. */
export interface FakeCall {
  name: string;
  args: unknown[];
  /** For a mount onto a `/proc/self/fd/N` path: the file the fake opened fd N on. */
  target?: string;
}

interface FakeFile {
  mode: number;
  content: Uint8Array;
  target?: string;
  rdev?: [number, number];
  xattrs?: Map<string, Uint8Array>;
  /** Access and modification times in nanoseconds, once set. */
  times?: [bigint, bigint];
}

/** A recording fake of {@link Syscall}. */
export class FakeSyscall implements Syscall {
  /** Every call, in order. */
  readonly calls: FakeCall[] = [];
  /** Files that exist, by absolute path. `/` exists from the start. */
  readonly files = new Map<string, FakeFile>([["/", {
    mode: S_IFDIR | 0o755,
    content: new Uint8Array(),
  }]]);
  /** Mount targets, in mount order. */
  readonly mounts: string[] = [];
  /** The filesystem type statfs reports for a path (`/proc/self/fd/N` as the file of fd N); 0 for others. */
  readonly fsTypes = new Map<string, number>();
  /** Open fds. */
  readonly fds = new Set<number>();
  /** Pids the fake forked and that have not been reaped. */
  readonly children = new Set<number>();
  /** Current capability sets. */
  caps: CapSets = { effective: (1n << 41n) - 1n, permitted: (1n << 41n) - 1n, inheritable: 0n };

  #failures: { at?: number; name?: string; errno: number }[] = [];
  #reads = new Map<number, Uint8Array[]>();
  #nextFd = 10;
  #nextPid = 1000;
  #umask = 0o022;

  /** Makes the `n`th call (1-based, counting every method) fail with `errno`. */
  failAt(n: number, errno: keyof typeof ERRNO | number = "EIO"): this {
    this.#failures.push({ at: n, errno: typeof errno === "number" ? errno : ERRNO[errno]! });
    return this;
  }

  /** Makes every call to the method `name` fail with `errno`. */
  failOn(name: keyof Syscall, errno: keyof typeof ERRNO | number = "EIO"): this {
    this.#failures.push({ name, errno: typeof errno === "number" ? errno : ERRNO[errno]! });
    return this;
  }

  /** Adds a file (or, with a mode of S_IFDIR, a directory) and its parents. */
  addFile(path: string, mode = S_IFREG | 0o644, content: string | Uint8Array = ""): this {
    this.#ensureParents(path);
    this.files.set(path, {
      mode,
      content: typeof content === "string" ? new TextEncoder().encode(content) : content,
    });
    return this;
  }

  /** Names of the calls made, in order. */
  names(): string[] {
    return this.calls.map((c) => c.name);
  }

  #ensureParents(path: string): void {
    const parts = path.split("/").filter(Boolean);
    let p = "";
    for (const part of parts.slice(0, -1)) {
      p += "/" + part;
      if (!this.files.has(p)) {
        this.files.set(p, { mode: S_IFDIR | 0o755, content: new Uint8Array() });
      }
    }
  }

  #record(name: string, args: unknown[], subject?: string): void {
    this.calls.push({ name, args });
    const n = this.calls.length;
    for (const f of this.#failures) {
      if (f.at === n || f.name === name) throw new SyscallError(name, f.errno, subject);
    }
  }

  #fail(name: string, errno: keyof typeof ERRNO, subject: string): never {
    throw new SyscallError(name, ERRNO[errno]!, subject);
  }

  #parentExists(path: string, call: string): void {
    const parent = path.slice(0, path.lastIndexOf("/")) || "/";
    const p = this.files.get(parent);
    if (!p) this.#fail(call, "ENOENT", path);
    if ((p.mode & S_IFMT) !== S_IFDIR) this.#fail(call, "ENOTDIR", path);
  }

  #create(path: string, call: string, file: FakeFile): void {
    this.#parentExists(path, call);
    if (this.files.has(path)) this.#fail(call, "EEXIST", path);
    this.files.set(path, file);
  }

  #newFd(): number {
    const fd = this.#nextFd++;
    this.fds.add(fd);
    return fd;
  }

  unshare(flags: number): void {
    this.#record("unshare", [flags]);
  }
  setns(fd: number, nstype: number): void {
    this.#record("setns", [fd, nstype]);
  }
  mount(
    source: string | null,
    target: string,
    fstype: string | null,
    flags: number,
    data: string | null,
  ): void {
    this.#record("mount", [source, target, fstype, flags, data], target);
    const resolved = this.#procFd(target);
    if (resolved !== target) this.calls.at(-1)!.target = resolved;
    this.mounts.push(resolved);
  }
  umount2(target: string, flags: number): void {
    this.#record("umount2", [target, flags], target);
    const i = this.mounts.lastIndexOf(this.#procFd(target));
    if (i < 0) this.#fail("umount", "EINVAL", target);
    this.mounts.splice(i, 1);
  }
  umount2Async(target: string, flags: number): Promise<boolean> {
    try {
      this.umount2(target, flags);
      return Promise.resolve(true);
    } catch {
      return Promise.resolve(false);
    }
  }
  pivotRoot(newRoot: string, putOld: string): void {
    this.#record("pivotRoot", [newRoot, putOld], newRoot);
  }
  chdir(path: string): void {
    this.#record("chdir", [path], path);
  }
  fchdir(fd: number): void {
    this.#record("fchdir", [fd]);
  }
  chroot(path: string): void {
    this.#record("chroot", [path], path);
  }
  sethostname(name: string): void {
    this.#record("sethostname", [name], name);
  }
  setdomainname(name: string): void {
    this.#record("setdomainname", [name], name);
  }
  setresuid(ruid: number, euid: number, suid: number): void {
    this.#record("setresuid", [ruid, euid, suid]);
  }
  setresgid(rgid: number, egid: number, sgid: number): void {
    this.#record("setresgid", [rgid, egid, sgid]);
  }
  setgroups(gids: readonly number[]): void {
    this.#record("setgroups", [[...gids]]);
  }
  capget(): CapSets {
    this.#record("capget", []);
    return { ...this.caps };
  }
  capset(sets: CapSets): void {
    this.#record("capset", [{ ...sets }]);
    this.caps = { ...sets };
  }
  prctl(option: number, arg2 = 0, arg3 = 0, arg4 = 0, arg5 = 0): number {
    this.#record("prctl", [option, arg2, arg3, arg4, arg5]);
    return 0;
  }
  setrlimit(resource: number, soft: bigint, hard: bigint): void {
    this.#record("setrlimit", [resource, soft, hard]);
  }
  umask(mask: number): number {
    this.#record("umask", [mask]);
    const old = this.#umask;
    this.#umask = mask;
    return old;
  }
  open(path: string, flags: number, mode = 0): number {
    this.#record("open", [path, flags, mode], path);
    if (!this.files.has(path)) {
      if (flags & 0o100 /* O_CREAT */) {
        this.#create(path, "open", { mode: S_IFREG | mode, content: new Uint8Array() });
      } else this.#fail("open", "ENOENT", path);
    }
    const fd = this.#newFd();
    this.#fdPaths.set(fd, path);
    return fd;
  }
  /**
   * Opens `path` under `dirfd` in the model: O_CREAT (with O_EXCL) creates a
   * file, O_DIRECTORY wants a directory, O_NOFOLLOW refuses a symlink unless
   * O_PATH. Symlinks on the way are not followed.
   */
  openat(dirfd: number, path: string, flags: number, mode = 0): number {
    this.#record("openat", [dirfd, path, flags, mode], path);
    const abs = this.#at(dirfd, path);
    const f = this.files.get(abs);
    if (!f) {
      if (!(flags & 0o100 /* O_CREAT */)) this.#fail("openat", "ENOENT", path);
      this.#create(abs, "openat", { mode: S_IFREG | mode, content: new Uint8Array() });
    } else {
      const type = f.mode & S_IFMT;
      if (flags & 0o100 && flags & 0o200 /* O_EXCL */) this.#fail("openat", "EEXIST", path);
      if (type === S_IFLNK && flags & O_NOFOLLOW && !(flags & O_PATH)) {
        this.#fail("openat", "ELOOP", path);
      }
      if (flags & O_DIRECTORY && type !== S_IFDIR) this.#fail("openat", "ENOTDIR", path);
    }
    const fd = this.#newFd();
    this.#fdPaths.set(fd, abs);
    return fd;
  }
  close(fd: number): void {
    this.#record("close", [fd]);
    this.fds.delete(fd);
    this.#fdPaths.delete(fd);
  }
  closeRange(first: number, last: number, flags = 0): void {
    this.#record("closeRange", [first, last, flags]);
    for (const fd of [...this.fds]) if (fd >= first && fd <= (last >>> 0)) this.fds.delete(fd);
  }
  openFds(): number[] {
    this.#record("openFds", []);
    return [0, 1, 2, ...this.fds].sort((a, b) => a - b);
  }
  dup2(oldfd: number, newfd: number): void {
    this.#record("dup2", [oldfd, newfd]);
  }
  read(fd: number, buf: Uint8Array): number {
    this.#record("read", [fd, buf.length]);
    const data = this.#reads.get(fd)?.shift();
    if (data === undefined) return 0;
    buf.set(data.subarray(0, buf.length));
    return Math.min(data.length, buf.length);
  }

  /** Makes the next read of `fd` return `data` (reads with nothing queued return 0, end of file). */
  queueRead(fd: number, data: string | Uint8Array): this {
    const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
    const queue = this.#reads.get(fd) ?? [];
    queue.push(bytes);
    this.#reads.set(fd, queue);
    return this;
  }
  /** Records the fd and a copy of what was written. */
  write(fd: number, buf: Uint8Array): number {
    this.#record("write", [fd, buf.slice()]);
    return buf.length;
  }
  mkdir(path: string, mode: number): void {
    this.#record("mkdir", [path, mode], path);
    this.#create(path, "mkdir", { mode: S_IFDIR | mode, content: new Uint8Array() });
  }
  rmdir(path: string): void {
    this.#record("rmdir", [path], path);
    const f = this.files.get(path);
    if (!f) this.#fail("rmdir", "ENOENT", path);
    for (const other of this.files.keys()) {
      if (other.startsWith(path + "/")) this.#fail("rmdir", "ENOTEMPTY", path);
    }
    this.files.delete(path);
  }
  unlink(path: string): void {
    this.#record("unlink", [path], path);
    if (!this.files.delete(path)) this.#fail("unlink", "ENOENT", path);
  }
  mknod(path: string, mode: number, major: number, minor: number): void {
    this.#record("mknod", [path, mode, major, minor], path);
    this.#create(path, "mknod", {
      mode: mode || S_IFCHR,
      content: new Uint8Array(),
      rdev: [major, minor],
    });
  }
  mkfifo(path: string, mode: number): void {
    this.#record("mkfifo", [path, mode], path);
    this.#create(path, "mkfifo", { mode: S_IFIFO | mode, content: new Uint8Array() });
  }
  symlink(target: string, path: string): void {
    this.#record("symlink", [target, path], path);
    this.#create(path, "symlink", { mode: S_IFLNK | 0o777, content: new Uint8Array(), target });
  }
  /** The target of symlink `path`; for `/proc/self/fd/N`, the path the fake opened fd N on. */
  readlink(path: string): string {
    this.#record("readlink", [path], path);
    const opened = this.#procFd(path);
    if (opened !== path) return opened;
    const f = this.files.get(path);
    if (!f) this.#fail("readlink", "ENOENT", path);
    if (f.target === undefined) this.#fail("readlink", "EINVAL", path);
    return f.target;
  }
  chown(path: string, uid: number, gid: number): void {
    this.#record("chown", [path, uid, gid], path);
  }
  chmod(path: string, mode: number): void {
    this.#record("chmod", [path, mode], path);
    const f = this.files.get(path);
    if (f) f.mode = (f.mode & S_IFMT) | mode;
  }
  stat(path: string, followSymlinks = true, dirfd = -100): FileStat {
    this.#record("stat", [path, followSymlinks, dirfd], path);
    const f = this.files.get(this.#at(dirfd, path));
    if (!f) this.#fail("stat", "ENOENT", path);
    return this.#statOf(f);
  }
  #statOf(f: FakeFile): FileStat {
    return {
      mode: f.mode,
      uid: 0,
      gid: 0,
      size: BigInt(f.content.length),
      rdevMajor: f.rdev?.[0] ?? 0,
      rdevMinor: f.rdev?.[1] ?? 0,
      devMajor: 0,
      devMinor: 0,
      ino: 0n,
      nlink: 1,
      blocks: 0n,
      atimeNs: f.times?.[0] ?? 0n,
      mtimeNs: f.times?.[1] ?? 0n,
    };
  }
  flock(fd: number, operation: number): void {
    this.#record("flock", [fd, operation]);
  }
  /** The stat of the file `fd` was opened on (a regular file for fds the fake cannot place). */
  fstat(fd: number): FileStat {
    this.#record("fstat", [fd]);
    const f = this.files.get(this.#fdPaths.get(fd) ?? "");
    if (f) return this.#statOf(f);
    return {
      mode: S_IFREG,
      uid: 0,
      gid: 0,
      size: 0n,
      rdevMajor: 0,
      rdevMinor: 0,
      devMajor: 0,
      devMinor: 0,
      ino: 0n,
      nlink: 1,
      blocks: 0n,
      atimeNs: 0n,
      mtimeNs: 0n,
    };
  }
  writeFile(
    path: string,
    data: string | Uint8Array,
    options: { create?: boolean; mode?: number; append?: boolean } = {},
  ): void {
    const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
    this.#record("writeFile", [
      path,
      typeof data === "string" ? data : `<${bytes.length} bytes>`,
      options,
    ], path);
    const f = this.files.get(path);
    if (!f) {
      if (!options.create) this.#fail("open", "ENOENT", path);
      this.#create(path, "open", { mode: S_IFREG | (options.mode ?? 0o644), content: bytes });
    } else if (options.append) {
      const joined = new Uint8Array(f.content.length + bytes.length);
      joined.set(f.content);
      joined.set(bytes, f.content.length);
      f.content = joined;
    } else {
      f.content = bytes;
    }
  }
  readFile(path: string): Uint8Array {
    this.#record("readFile", [path], path);
    const f = this.files.get(path);
    if (!f) this.#fail("open", "ENOENT", path);
    return f.content;
  }
  ioctl(fd: number, request: number, arg: number | Uint8Array): number {
    this.#record("ioctl", [fd, request, typeof arg === "number" ? arg : "<buffer>"]);
    return 0;
  }
  /** Records the command and a copy of `attr`; commands that make an fd return a fresh one. */
  bpf(cmd: number, attr: Uint8Array): number {
    this.#record("bpf", [cmd, attr.slice()]);
    const makesFd = cmd === 5 /* BPF_PROG_LOAD */ || cmd === 13 /* BPF_PROG_GET_FD_BY_ID */;
    return makesFd ? this.#newFd() : 0;
  }
  statfs(path: string): StatFs {
    this.#record("statfs", [path], path);
    return { type: this.fsTypes.get(this.#procFd(path)) ?? 0, flags: 0 };
  }
  getpid(): number {
    this.#record("getpid", []);
    return 1;
  }
  getppid(): number {
    this.#record("getppid", []);
    return 0;
  }
  fork(): number {
    this.#record("fork", []);
    const pid = this.#nextPid++;
    this.children.add(pid);
    return pid;
  }
  waitpid(pid: number, options: number): WaitResult {
    this.#record("waitpid", [pid, options]);
    if (!this.children.delete(pid)) this.#fail("waitpid", "ECHILD", `pid ${pid}`);
    return { pid, status: 0 };
  }
  waitpidAsync(pid: number): Promise<WaitResult> {
    try {
      return Promise.resolve(this.waitpid(pid, 0));
    } catch (err) {
      return Promise.reject(err);
    }
  }
  sleep(milliseconds: number): void {
    this.#record("sleep", [milliseconds]);
  }
  kill(pid: number, signal: number): void {
    this.#record("kill", [pid, signal]);
  }
  setsid(): number {
    this.#record("setsid", []);
    return 1;
  }
  execve(path: string, argv: readonly string[], envp: readonly string[]): never {
    this.#record("execve", [path, [...argv], [...envp]], path);
    throw new FakeExec(path, argv, envp);
  }
  exit(code: number): never {
    this.#record("exit", [code]);
    throw new FakeExit(code);
  }
  resetSignals(signals?: readonly number[]): void {
    this.#record("resetSignals", signals ? [[...signals]] : []);
  }
  socketpair(type: number): [number, number] {
    this.#record("socketpair", [type]);
    return [this.#newFd(), this.#newFd()];
  }
  socket(domain: number, type: number, protocol = 0): number {
    this.#record("socket", [domain, type, protocol]);
    return this.#newFd();
  }
  pipe(flags = 0): [number, number] {
    this.#record("pipe", [flags]);
    return [this.#newFd(), this.#newFd()];
  }
  connectUnix(path: string): number {
    this.#record("connectUnix", [path], path);
    return this.#newFd();
  }
  sendFds(sock: number, data: Uint8Array, fds: readonly number[]): void {
    this.#record("sendFds", [sock, data.length, [...fds]]);
  }
  recvFds(sock: number, maxData: number): { data: Uint8Array; fds: number[] } {
    this.#record("recvFds", [sock, maxData]);
    return { data: new Uint8Array(), fds: [] };
  }
  sendUnixDatagram(path: string, data: Uint8Array): void {
    this.#record("sendUnixDatagram", [path, data.length], path);
  }
  openPty(ptmx: string): { master: number; slavePath: string } {
    this.#record("openPty", [ptmx], ptmx);
    return { master: this.#newFd(), slavePath: "/dev/pts/0" };
  }
  getWinsize(fd: number): WinSize {
    this.#record("getWinsize", [fd]);
    return { rows: 24, cols: 80 };
  }
  setWinsize(fd: number, size: WinSize): void {
    this.#record("setWinsize", [fd, size]);
  }

  // Files relative to a directory fd, and extended attributes. An fd the fake
  // opened by path resolves relative paths against that path; others against `fd<N>`.
  #fdPaths = new Map<number, string>();

  #at(dirfd: number, path: string): string {
    if (path.startsWith("/")) return path;
    const base = dirfd === -100 ? "/" : this.#fdPaths.get(dirfd) ?? `/fd${dirfd}`;
    if (path === "" || path === ".") return base;
    return base === "/" ? `/${path}` : `${base}/${path}`;
  }

  /** A `/proc/self/fd/N` path as the file the fake opened fd N on; other paths as they are. */
  #procFd(path: string): string {
    const m = /^\/proc\/self\/fd\/(\d+)$/.exec(path);
    return (m && this.#fdPaths.get(Number(m[1]))) ?? path;
  }

  openat2(dirfd: number, path: string, flags: number, mode: number, resolve: number): number {
    this.#record("openat2", [dirfd, path, flags, mode, resolve], path);
    const abs = this.#at(dirfd, path);
    if (!this.files.has(abs)) {
      if (flags & 0o100 /* O_CREAT */) {
        this.#create(abs, "openat2", { mode: S_IFREG | mode, content: new Uint8Array() });
      } else this.#fail("openat2", "ENOENT", path);
    }
    const fd = this.#newFd();
    this.#fdPaths.set(fd, abs);
    return fd;
  }
  mkdirat(dirfd: number, path: string, mode: number): void {
    this.#record("mkdirat", [dirfd, path, mode], path);
    this.#create(this.#at(dirfd, path), "mkdirat", {
      mode: S_IFDIR | mode,
      content: new Uint8Array(),
    });
  }
  mknodat(dirfd: number, path: string, mode: number, major: number, minor: number): void {
    this.#record("mknodat", [dirfd, path, mode, major, minor], path);
    this.#create(this.#at(dirfd, path), "mknodat", {
      mode,
      content: new Uint8Array(),
      rdev: [major, minor],
    });
  }
  symlinkat(target: string, dirfd: number, path: string): void {
    this.#record("symlinkat", [target, dirfd, path], path);
    this.#create(this.#at(dirfd, path), "symlinkat", {
      mode: S_IFLNK | 0o777,
      content: new Uint8Array(),
      target,
    });
  }
  linkat(
    olddirfd: number,
    oldpath: string,
    newdirfd: number,
    newpath: string,
    flags: number,
  ): void {
    this.#record("linkat", [olddirfd, oldpath, newdirfd, newpath, flags], newpath);
    const source = this.files.get(this.#at(olddirfd, oldpath));
    if (!source) this.#fail("linkat", "ENOENT", oldpath);
    this.#create(this.#at(newdirfd, newpath), "linkat", source);
  }
  unlinkat(dirfd: number, path: string, flags: number): void {
    this.#record("unlinkat", [dirfd, path, flags], path);
    const abs = this.#at(dirfd, path);
    const f = this.files.get(abs);
    if (!f) this.#fail("unlinkat", "ENOENT", path);
    const isDir = (f.mode & S_IFMT) === S_IFDIR;
    if (isDir && !(flags & 0x200 /* AT_REMOVEDIR */)) this.#fail("unlinkat", "EISDIR", path);
    if (!isDir && flags & 0x200) this.#fail("unlinkat", "ENOTDIR", path);
    if (isDir) {
      for (const other of this.files.keys()) {
        if (other.startsWith(abs + "/")) this.#fail("unlinkat", "ENOTEMPTY", path);
      }
    }
    this.files.delete(abs);
  }
  fchownat(dirfd: number, path: string, uid: number, gid: number, flags: number): void {
    this.#record("fchownat", [dirfd, path, uid, gid, flags], path);
  }
  fchmodat(dirfd: number, path: string, mode: number): void {
    this.#record("fchmodat", [dirfd, path, mode], path);
    const f = this.files.get(this.#at(dirfd, path));
    if (f) f.mode = (f.mode & S_IFMT) | mode;
  }
  fchmod(fd: number, mode: number): void {
    this.#record("fchmod", [fd, mode]);
    const f = this.files.get(this.#fdPaths.get(fd) ?? "");
    if (f) f.mode = (f.mode & S_IFMT) | mode;
  }
  utimensat(dirfd: number, path: string, atimeNs: bigint, mtimeNs: bigint, flags: number): void {
    this.#record("utimensat", [dirfd, path, atimeNs, mtimeNs, flags], path);
    const f = this.files.get(this.#at(dirfd, path));
    if (f) f.times = [atimeNs, mtimeNs];
  }
  futimens(fd: number, atimeNs: bigint, mtimeNs: bigint): void {
    this.#record("futimens", [fd, atimeNs, mtimeNs]);
    const f = this.files.get(this.#fdPaths.get(fd) ?? "");
    if (f) f.times = [atimeNs, mtimeNs];
  }
  lsetxattr(path: string, name: string, value: Uint8Array, flags = 0): void {
    this.#record("lsetxattr", [path, name, value.length, flags], path);
    const f = this.files.get(path);
    if (!f) this.#fail("lsetxattr", "ENOENT", path);
    (f.xattrs ??= new Map()).set(name, value.slice());
  }
  fsetxattr(fd: number, name: string, value: Uint8Array, flags = 0): void {
    this.#record("fsetxattr", [fd, name, value.length, flags]);
    const f = this.files.get(this.#fdPaths.get(fd) ?? "");
    if (f) (f.xattrs ??= new Map()).set(name, value.slice());
  }
  lgetxattr(path: string, name: string): Uint8Array {
    this.#record("lgetxattr", [path, name], path);
    const f = this.files.get(path);
    if (!f) this.#fail("lgetxattr", "ENOENT", path);
    const value = f.xattrs?.get(name);
    if (!value) this.#fail("lgetxattr", "ENODATA", path);
    return value;
  }
  llistxattr(path: string): string[] {
    this.#record("llistxattr", [path], path);
    const f = this.files.get(path);
    if (!f) this.#fail("llistxattr", "ENOENT", path);
    return [...(f.xattrs?.keys() ?? [])];
  }
  syncfs(fd: number): void {
    this.#record("syncfs", [fd]);
  }
  readlinkat(dirfd: number, path: string): string {
    this.#record("readlinkat", [dirfd, path], path);
    const f = this.files.get(this.#at(dirfd, path));
    if (!f) this.#fail("readlinkat", "ENOENT", path);
    if (f.target === undefined) this.#fail("readlinkat", "EINVAL", path);
    return f.target;
  }
  readdir(fd: number): string[] {
    this.#record("readdir", [fd]);
    const dir = this.#fdPaths.get(fd) ?? `/fd${fd}`;
    const prefix = dir === "/" ? "/" : `${dir}/`;
    return [...this.files.keys()]
      .filter((p) => p.startsWith(prefix) && p !== prefix && !p.slice(prefix.length).includes("/"))
      .map((p) => p.slice(prefix.length));
  }
}

/**
 * Thrown by `FakeSyscall.execve` and `exit`, which cannot replace or end the
 * process: code that catches errors must let these through (see
 * `endsProcess`), the test catches them.
 */
export class FakeProcessEnd extends Error {
  readonly endsProcess = true;
}

/** Thrown by `FakeSyscall.execve`, which cannot replace the process: the test catches it. */
export class FakeExec extends FakeProcessEnd {
  constructor(
    readonly path: string,
    readonly argv: readonly string[],
    readonly envp: readonly string[],
  ) {
    super(`execve ${path}`);
    this.name = "FakeExec";
  }
}

/** Thrown by `FakeSyscall.exit`, which cannot end the process: the test catches it. */
export class FakeExit extends FakeProcessEnd {
  constructor(readonly code: number) {
    super(`exit ${code}`);
    this.name = "FakeExit";
  }
}
