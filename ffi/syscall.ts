/**
 * The one seam between tug and the kernel: every privileged operation goes
 * through a {@link Syscall}. `LibcSyscall` (ffi/libc.ts) implements it over
 * `Deno.dlopen`; `FakeSyscall` (ffi/fake.ts) records calls for unit tests and
 * can be told to fail the Nth one.
 *
 * Every method is synchronous (the container set-up path must never leave the
 * main thread) and throws a {@link SyscallError} naming the call, the path and
 * the errno when the kernel refuses.
 *
 * @module
 */

import { errnoName } from "./constants.ts";

/** A failed system call: which call, on what, and the errno. */
export class SyscallError extends Error {
  /** The libc function that failed, e.g. `mount`. */
  readonly syscall: string;
  /** The errno value. */
  readonly errno: number;
  /** The errno's symbolic name, e.g. `EBUSY`. */
  readonly errnoName: string;
  /** What the call was applied to (a path, a pid, an fd), when there is one. */
  readonly subject?: string;

  constructor(syscall: string, errno: number, subject?: string, options?: ErrorOptions) {
    const name = errnoName(errno);
    super(
      subject === undefined ? `${syscall}: ${name}` : `${syscall} ${subject}: ${name}`,
      options,
    );
    this.name = "SyscallError";
    this.syscall = syscall;
    this.errno = errno;
    this.errnoName = name;
    if (subject !== undefined) this.subject = subject;
  }
}

/** Effective, permitted and inheritable capability sets as 64-bit masks. */
export interface CapSets {
  effective: bigint;
  permitted: bigint;
  inheritable: bigint;
}

/** The fields of statx(2) that tug uses. */
export interface FileStat {
  /** File type and permission bits (st_mode). */
  mode: number;
  uid: number;
  gid: number;
  size: bigint;
  /** Device number for character and block devices. */
  rdevMajor: number;
  rdevMinor: number;
  /** Device that holds the file. */
  devMajor: number;
  devMinor: number;
  ino: bigint;
  /** Number of hard links. */
  nlink: number;
  /** 512-byte blocks allocated. */
  blocks: bigint;
  /** Last access and modification, in nanoseconds since the epoch. */
  atimeNs: bigint;
  mtimeNs: bigint;
}

/** The fields of statfs(2) that tug uses. */
export interface StatFs {
  /** The filesystem's type, a *_MAGIC number (f_type). */
  type: number;
  /** Mount flags, as ST_* values (f_flags). */
  flags: number;
}

/** The result of waitpid(2). */
export interface WaitResult {
  /** The pid that changed state, or 0 with WNOHANG when none did. */
  pid: number;
  /** The raw wait status; decode with `exitCodeOf`. */
  status: number;
}

/** Window size of a terminal. */
export interface WinSize {
  rows: number;
  cols: number;
}

/**
 * Typed wrappers over the libc calls tug needs. Strings are paths or names;
 * numbers are fds, pids, flags. Methods throw {@link SyscallError}.
 */
export interface Syscall {
  // Namespaces and mounts.
  unshare(flags: number): void;
  setns(fd: number, nstype: number): void;
  mount(
    source: string | null,
    target: string,
    fstype: string | null,
    flags: number,
    data: string | null,
  ): void;
  umount2(target: string, flags: number): void;
  /**
   * umount2(2) on a helper thread (it waits for an RCU grace period, ~2 ms);
   * true when it unmounted, false on any failure (errno is not readable here).
   */
  umount2Async(target: string, flags: number): Promise<boolean>;
  pivotRoot(newRoot: string, putOld: string): void;
  chdir(path: string): void;
  fchdir(fd: number): void;
  chroot(path: string): void;
  sethostname(name: string): void;
  setdomainname(name: string): void;

  // Credentials and privileges.
  setresuid(ruid: number, euid: number, suid: number): void;
  setresgid(rgid: number, egid: number, sgid: number): void;
  setgroups(gids: readonly number[]): void;
  capget(): CapSets;
  capset(sets: CapSets): void;
  /** prctl(2) with integer arguments; returns the call's result. */
  prctl(option: number, arg2?: number, arg3?: number, arg4?: number, arg5?: number): number;
  setrlimit(resource: number, soft: bigint, hard: bigint): void;
  umask(mask: number): number;

  // Files.
  open(path: string, flags: number, mode?: number): number;
  openat(dirfd: number, path: string, flags: number, mode?: number): number;
  close(fd: number): void;
  closeRange(first: number, last: number, flags?: number): void;
  /** The fds this process has open (from /proc/self/fd). */
  openFds(): number[];
  dup2(oldfd: number, newfd: number): void;
  read(fd: number, buf: Uint8Array): number;
  write(fd: number, buf: Uint8Array): number;
  mkdir(path: string, mode: number): void;
  rmdir(path: string): void;
  unlink(path: string): void;
  mknod(path: string, mode: number, major: number, minor: number): void;
  mkfifo(path: string, mode: number): void;
  symlink(target: string, path: string): void;
  readlink(path: string): string;
  chown(path: string, uid: number, gid: number): void;
  chmod(path: string, mode: number): void;
  /** statx(2); `followSymlinks` false is lstat. `dirfd` defaults to AT_FDCWD. */
  stat(path: string, followSymlinks?: boolean, dirfd?: number): FileStat;
  /** statx(2) of an open fd (AT_EMPTY_PATH). */
  fstat(fd: number): FileStat;
  /** flock(2): `operation` is LOCK_EX, LOCK_NB…; a lock held elsewhere with LOCK_NB is EAGAIN (EWOULDBLOCK). */
  flock(fd: number, operation: number): void;
  /** Writes the whole of `data` to `path` (opened O_WRONLY|O_TRUNC, created when `create`). */
  writeFile(
    path: string,
    data: string | Uint8Array,
    options?: { create?: boolean; mode?: number; append?: boolean },
  ): void;
  /** Reads a whole (small) file. */
  readFile(path: string): Uint8Array;
  ioctl(fd: number, request: number, arg: number | Uint8Array): number;
  /**
   * bpf(2): runs `cmd` with `attr` as its `union bpf_attr` (the kernel may write results into
   * `attr`); returns the call's result (an fd for the commands that make one).
   */
  bpf(cmd: number, attr: Uint8Array): number;
  /** statfs(2) of the filesystem holding `path`. */
  statfs(path: string): StatFs;

  // Processes.
  getpid(): number;
  getppid(): number;
  /** fork(2), made safe for a Deno process (see ffi/libc.ts). Returns 0 in the child. */
  fork(): number;
  waitpid(pid: number, options: number): WaitResult;
  /** waitpid(2) on a helper thread, for async callers that must keep their event loop running. */
  waitpidAsync(pid: number): Promise<WaitResult>;
  /** Sleeps the calling thread (used by synchronous code that polls, e.g. hook timeouts). */
  sleep(milliseconds: number): void;
  kill(pid: number, signal: number): void;
  setsid(): number;
  /** execve(2); returns only by throwing. */
  execve(path: string, argv: readonly string[], envp: readonly string[]): never;
  /** _exit(2): leaves at once, running no JavaScript and no exit handlers. */
  exit(code: number): never;
  /** Restores the default disposition of `signals` (default: every signal) and empties the signal mask. */
  resetSignals(signals?: readonly number[]): void;

  // Sockets and terminals.
  socketpair(type: number): [number, number];
  /** socket(2) with SOCK_CLOEXEC. */
  socket(domain: number, type: number, protocol?: number): number;
  /** pipe2(2) with O_CLOEXEC (plus `flags`): [read end, write end]. */
  pipe(flags?: number): [number, number];
  /** Connects a new AF_UNIX stream socket to `path` and returns its fd. */
  connectUnix(path: string): number;
  /** Sends `fds` over a unix socket with SCM_RIGHTS, with `data` as the payload. */
  sendFds(sock: number, data: Uint8Array, fds: readonly number[]): void;
  /** Receives a message and the fds sent with it. */
  recvFds(sock: number, maxData: number): { data: Uint8Array; fds: number[] };
  /**
   * Sends one datagram to the AF_UNIX datagram socket `path` (a name starting
   * with `@` is in the abstract namespace), as sd_notify does.
   */
  sendUnixDatagram(path: string, data: Uint8Array): void;
  /** posix_openpt + grantpt + unlockpt on the given ptmx path; returns master fd and slave path. */
  openPty(ptmx: string): { master: number; slavePath: string };
  getWinsize(fd: number): WinSize;
  setWinsize(fd: number, size: WinSize): void;

  // Files relative to a directory fd, and extended attributes (images/unpack, images/snapshots).
  /** openat2(2): opens `path` under `dirfd` with `resolve` (RESOLVE_*) restricting how it is walked. */
  openat2(dirfd: number, path: string, flags: number, mode: number, resolve: number): number;
  mkdirat(dirfd: number, path: string, mode: number): void;
  mknodat(dirfd: number, path: string, mode: number, major: number, minor: number): void;
  symlinkat(target: string, dirfd: number, path: string): void;
  linkat(olddirfd: number, oldpath: string, newdirfd: number, newpath: string, flags: number): void;
  unlinkat(dirfd: number, path: string, flags: number): void;
  fchownat(dirfd: number, path: string, uid: number, gid: number, flags: number): void;
  /** fchmodat(2) without flags: follows a final symlink, so use it on non-symlinks only. */
  fchmodat(dirfd: number, path: string, mode: number): void;
  fchmod(fd: number, mode: number): void;
  /** utimensat(2) with nanosecond times since the epoch. */
  utimensat(dirfd: number, path: string, atimeNs: bigint, mtimeNs: bigint, flags: number): void;
  futimens(fd: number, atimeNs: bigint, mtimeNs: bigint): void;
  /** lsetxattr(2): sets an attribute on `path` without following a final symlink. */
  lsetxattr(path: string, name: string, value: Uint8Array, flags?: number): void;
  fsetxattr(fd: number, name: string, value: Uint8Array, flags?: number): void;
  /** lgetxattr(2); throws ENODATA when the attribute is not set. */
  lgetxattr(path: string, name: string): Uint8Array;
  /** llistxattr(2): the attribute names of `path`. */
  llistxattr(path: string): string[];
  syncfs(fd: number): void;
  /** readlinkat(2): the target of the symlink `path` under `dirfd` (`path` "" reads an O_PATH fd's own link). */
  readlinkat(dirfd: number, path: string): string;
  /** The names in the directory open at `fd` (O_RDONLY), without "." and "..", read with getdents64(2). */
  readdir(fd: number): string[];
}

/** Decodes a wait status: the exit code, or 128 + signal for a killed process (shell convention). */
export function exitCodeOf(status: number): number {
  const signal = status & 0x7f;
  if (signal === 0) return (status >> 8) & 0xff;
  return 128 + signal;
}

/** True when the wait status says the process was killed by a signal. */
export function signalOf(status: number): number | undefined {
  const signal = status & 0x7f;
  return signal !== 0 && signal !== 0x7f ? signal : undefined;
}
