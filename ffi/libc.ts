/**
 * The real {@link Syscall}: glibc's functions called through `Deno.dlopen`.
 *
 * Rules this file keeps (see DESIGN.md, "Facts about Deno FFI"):
 * - every symbol is synchronous, so errno is read on the calling thread
 *   through `__errno_location()` right after the call;
 * - variadic functions (open, ioctl, prctl) are declared with fixed integer
 *   arguments, which is how the SysV x86_64 and AAPCS64 ABIs pass them anyway.
 *
 * `fork()` needs care in a V8 process: V8 is built to mark every mapping it
 * makes MADV_DONTFORK (V8_ENABLE_PRIVATE_MAPPING_FORK_OPTIMIZATION), so a
 * plain fork gives a child without its heap. `LibcSyscall.fork` applies
 * MADV_DOFORK to the whole address space from native code that then jumps to
 * glibc's fork (ffi/fork_code.ts), so V8 cannot map a page in between. tug runs
 * V8 with `--single-threaded`, so no V8 worker thread maps pages or holds a
 * lock at the moment of the fork, and the child can run synchronous JavaScript
 * (and garbage-collect) until it calls execve.
 *
 * @module
 */

import {
  AF_UNIX,
  AT_EMPTY_PATH,
  AT_FDCWD,
  AT_SYMLINK_NOFOLLOW,
  ERRNO,
  LINUX_CAPABILITY_VERSION_3,
  MADV_DOFORK,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  NR,
  O_APPEND,
  O_CLOEXEC,
  O_CREAT,
  O_NOCTTY,
  O_RDONLY,
  O_RDWR,
  O_TRUNC,
  O_WRONLY,
  PROT_EXEC,
  PROT_READ,
  PROT_WRITE,
  SCM_RIGHTS,
  SIG_SETMASK,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SOCK_STREAM,
  SOL_SOCKET,
  STATX_BASIC_STATS,
  SYS_BPF,
  SYS_OPENAT2,
  TIOCGPTN,
  TIOCGWINSZ,
  TIOCSPTLCK,
  TIOCSWINSZ,
} from "./constants.ts";
import { forkCode } from "./fork_code.ts";
import type { CapSets, FileStat, StatFs, Syscall, WaitResult, WinSize } from "./syscall.ts";
import { SyscallError } from "./syscall.ts";

const SYMBOLS = {
  __errno_location: { parameters: [], result: "pointer" },
  unshare: { parameters: ["i32"], result: "i32" },
  setns: { parameters: ["i32", "i32"], result: "i32" },
  mount: { parameters: ["buffer", "buffer", "buffer", "u64", "buffer"], result: "i32" },
  umount2: { parameters: ["buffer", "i32"], result: "i32" },
  pivot_root: { parameters: ["buffer", "buffer"], result: "i32" },
  chdir: { parameters: ["buffer"], result: "i32" },
  fchdir: { parameters: ["i32"], result: "i32" },
  chroot: { parameters: ["buffer"], result: "i32" },
  sethostname: { parameters: ["buffer", "usize"], result: "i32" },
  setdomainname: { parameters: ["buffer", "usize"], result: "i32" },
  setresuid: { parameters: ["u32", "u32", "u32"], result: "i32" },
  setresgid: { parameters: ["u32", "u32", "u32"], result: "i32" },
  setgroups: { parameters: ["usize", "buffer"], result: "i32" },
  capget: { parameters: ["buffer", "buffer"], result: "i32" },
  capset: { parameters: ["buffer", "buffer"], result: "i32" },
  prctl: { parameters: ["i32", "u64", "u64", "u64", "u64"], result: "i32" },
  setrlimit: { parameters: ["i32", "buffer"], result: "i32" },
  umask: { parameters: ["u32"], result: "u32" },
  open: { parameters: ["buffer", "i32", "u32"], result: "i32" },
  openat: { parameters: ["i32", "buffer", "i32", "u32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  close_range: { parameters: ["u32", "u32", "i32"], result: "i32" },
  flock: { parameters: ["i32", "i32"], result: "i32" },
  dup2: { parameters: ["i32", "i32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  mkdir: { parameters: ["buffer", "u32"], result: "i32" },
  rmdir: { parameters: ["buffer"], result: "i32" },
  unlink: { parameters: ["buffer"], result: "i32" },
  mknod: { parameters: ["buffer", "u32", "u64"], result: "i32" },
  mkfifo: { parameters: ["buffer", "u32"], result: "i32" },
  symlink: { parameters: ["buffer", "buffer"], result: "i32" },
  readlink: { parameters: ["buffer", "buffer", "usize"], result: "isize" },
  chown: { parameters: ["buffer", "u32", "u32"], result: "i32" },
  chmod: { parameters: ["buffer", "u32"], result: "i32" },
  statx: { parameters: ["i32", "buffer", "i32", "u32", "buffer"], result: "i32" },
  ioctl_ptr: { name: "ioctl", parameters: ["i32", "u64", "buffer"], result: "i32" },
  ioctl_int: { name: "ioctl", parameters: ["i32", "u64", "u64"], result: "i32" },
  syscall_bpf: { name: "syscall", parameters: ["i64", "i64", "buffer", "u64"], result: "i64" },
  getpid: { parameters: [], result: "i32" },
  getppid: { parameters: [], result: "i32" },
  statfs: { parameters: ["buffer", "buffer"], result: "i32" },
  usleep: { parameters: ["u32"], result: "i32" },
  waitpid_async: {
    name: "waitpid",
    parameters: ["i32", "buffer", "i32"],
    result: "i32",
    nonblocking: true,
  },
  umount2_async: {
    name: "umount2",
    parameters: ["buffer", "i32"],
    result: "i32",
    nonblocking: true,
  },
  fork: { parameters: [], result: "i32" },
  waitpid: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  kill: { parameters: ["i32", "i32"], result: "i32" },
  setsid: { parameters: [], result: "i32" },
  execve: { parameters: ["buffer", "buffer", "buffer"], result: "i32" },
  _exit: { parameters: ["i32"], result: "void" },
  signal: { parameters: ["i32", "pointer"], result: "pointer" },
  sigprocmask: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  socketpair: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  pipe2: { parameters: ["buffer", "i32"], result: "i32" },
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  sendmsg: { parameters: ["i32", "buffer", "i32"], result: "isize" },
  recvmsg: { parameters: ["i32", "buffer", "i32"], result: "isize" },
  ptsname_r: { parameters: ["i32", "buffer", "usize"], result: "i32" },
  madvise: { parameters: ["usize", "usize", "i32"], result: "i32" },
  syscall_openat2: {
    name: "syscall",
    parameters: ["i64", "i32", "buffer", "buffer", "usize"],
    result: "i64",
  },
  mkdirat: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  mknodat: { parameters: ["i32", "buffer", "u32", "u64"], result: "i32" },
  symlinkat: { parameters: ["buffer", "i32", "buffer"], result: "i32" },
  linkat: { parameters: ["i32", "buffer", "i32", "buffer", "i32"], result: "i32" },
  unlinkat: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  fchownat: { parameters: ["i32", "buffer", "u32", "u32", "i32"], result: "i32" },
  fchmodat: { parameters: ["i32", "buffer", "u32", "i32"], result: "i32" },
  fchmod: { parameters: ["i32", "u32"], result: "i32" },
  utimensat: { parameters: ["i32", "buffer", "buffer", "i32"], result: "i32" },
  futimens: { parameters: ["i32", "buffer"], result: "i32" },
  lsetxattr: { parameters: ["buffer", "buffer", "buffer", "usize", "i32"], result: "i32" },
  fsetxattr: { parameters: ["i32", "buffer", "buffer", "usize", "i32"], result: "i32" },
  lgetxattr: { parameters: ["buffer", "buffer", "buffer", "usize"], result: "isize" },
  llistxattr: { parameters: ["buffer", "buffer", "usize"], result: "isize" },
  syncfs: { parameters: ["i32"], result: "i32" },
  readlinkat: { parameters: ["i32", "buffer", "buffer", "usize"], result: "isize" },
  getdents64: { parameters: ["i32", "buffer", "usize"], result: "isize" },
} as const;

type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/** The few functions that must be glibc's own (or run on a helper thread); all else goes through syscall(). */
const NATIVE = {
  __errno_location: SYMBOLS.__errno_location,
  fork: SYMBOLS.fork,
  syscall: { parameters: ["i64", "i64", "i64", "i64", "i64", "i64", "i64"], result: "i64" },
  syscall_async: {
    name: "syscall",
    parameters: ["i64", "i64", "i64", "i64", "i64", "i64", "i64"],
    result: "i64",
    nonblocking: true,
  },
} as const;

type Native = Deno.DynamicLibrary<typeof NATIVE>["symbols"];
type Arg = number | bigint | Uint8Array | Deno.PointerValue;

let native: Native | undefined;
let symbols: Libc | undefined;

/** An argument as syscall() takes it: integers as they are, buffers as their address, null as 0. */
function word(a: Arg): bigint {
  if (a === null) return 0n;
  if (typeof a === "bigint") return a;
  if (typeof a === "number") return BigInt(a);
  if (a instanceof Uint8Array) {
    return a.length === 0 ? 0n : BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(a)));
  }
  return BigInt(Deno.UnsafePointer.value(a));
}

/** A function calling system call `nr`; its result is a number, as the glibc wrappers' are (none here exceeds 2^53). */
function syscallOf(nr: number): (...args: Arg[]) => number {
  const big = BigInt(nr);
  return (...args: Arg[]) => {
    const w = args.map(word);
    return Number(
      native!.syscall(big, w[0] ?? 0n, w[1] ?? 0n, w[2] ?? 0n, w[3] ?? 0n, w[4] ?? 0n, w[5] ?? 0n),
    );
  };
}

/**
 * glibc's functions as tug calls them. Only `fork` and `__errno_location` are
 * bound as themselves: everything else is a system call made through glibc's
 * generic syscall(). Deno compiles a trampoline per bound symbol (0.1–0.2 ms
 * each), so a container start would otherwise spend several milliseconds
 * compiling trampolines for ~40 functions. The translations keep each
 * wrapper's contract: -1 and errno on failure.
 */
function libc(): Libc {
  if (symbols) return symbols;
  native = Deno.dlopen("libc.so.6", NATIVE).symbols;
  const n = native;
  const AT_FDCWD_ = -100;
  const AT_REMOVEDIR = 0x200;
  const direct = (name: string) => syscallOf(NR[name]!);
  const via: Record<string, (...a: Arg[]) => unknown> = {
    open: (path, flags, mode) => direct("openat")(AT_FDCWD_, path, flags, mode),
    mkdir: (path, mode) => direct("mkdirat")(AT_FDCWD_, path, mode),
    rmdir: (path) => direct("unlinkat")(AT_FDCWD_, path, AT_REMOVEDIR),
    unlink: (path) => direct("unlinkat")(AT_FDCWD_, path, 0),
    mknod: (path, mode, dev) =>
      direct("mknodat")(AT_FDCWD_, path, mode, BigInt(dev as bigint) & 0xffffffffn),
    mknodat: (dirfd, path, mode, dev) =>
      direct("mknodat")(dirfd, path, mode, BigInt(dev as bigint) & 0xffffffffn),
    mkfifo: (path, mode) => direct("mknodat")(AT_FDCWD_, path, 0o010000 | Number(mode), 0),
    symlink: (target, path) => direct("symlinkat")(target, AT_FDCWD_, path),
    readlink: (path, buf, len) => direct("readlinkat")(AT_FDCWD_, path, buf, len),
    chown: (path, uid, gid) => direct("fchownat")(AT_FDCWD_, path, uid, gid, 0),
    chmod: (path, mode) => direct("fchmodat")(AT_FDCWD_, path, mode),
    fchmodat: (dirfd, path, mode, flags) =>
      Number(flags) === 0
        ? direct("fchmodat")(dirfd, path, mode)
        : direct("fchmodat2")(dirfd, path, mode, flags),
    futimens: (fd, times) => direct("utimensat")(fd, null, times, 0),
    // dup3 refuses equal fds where dup2 checks the fd and returns it.
    dup2: (oldfd, newfd) => {
      if (word(oldfd) !== word(newfd)) return direct("dup3")(oldfd, newfd, 0);
      const r = direct("fcntl")(oldfd, 1 /* F_GETFD */);
      return r < 0 ? r : Number(word(oldfd));
    },
    waitpid: (pid, status, options) => direct("wait4")(pid, status, options, null),
    setrlimit: (resource, limit) => direct("prlimit64")(0, resource, limit, null),
    _exit: (code) => direct("exit_group")(code),
    ioctl_ptr: direct("ioctl"),
    ioctl_int: direct("ioctl"),
    syscall_bpf: (nr, ...rest) => syscallOf(Number(nr))(...rest),
    syscall_openat2: (nr, ...rest) => syscallOf(Number(nr))(...rest),
    // SIG_DFL (the null handler) with empty flags and mask: 32 zero bytes fit both kernel sigaction layouts.
    signal: (sig) => direct("rt_sigaction")(sig, new Uint8Array(32), null, 8),
    sigprocmask: (how, set, old) => direct("rt_sigprocmask")(how, set, old, 8),
    usleep: (us) => {
      const ts = new BigInt64Array([
        BigInt(Math.floor(Number(us) / 1e6)),
        BigInt((Number(us) % 1e6) * 1000),
      ]);
      return direct("nanosleep")(new Uint8Array(ts.buffer), null);
    },
    ptsname_r: (fd, buf, len) => {
      const num = new Uint32Array(1);
      const r = direct("ioctl")(fd, TIOCGPTN, new Uint8Array(num.buffer));
      if (r < 0) return errno();
      const name = encoder.encode(`/dev/pts/${num[0]}\0`);
      if (name.length > Number(len)) return 34; // ERANGE
      (buf as Uint8Array).set(name);
      return 0;
    },
    waitpid_async: async (pid, status, options) =>
      Number(
        await n.syscall_async(
          BigInt(NR.wait4!),
          word(pid),
          word(status),
          word(options),
          0n,
          0n,
          0n,
        ),
      ),
    umount2_async: async (target, flags) =>
      Number(await n.syscall_async(BigInt(NR.umount2!), word(target), word(flags), 0n, 0n, 0n, 0n)),
  };
  const bound: Record<string, unknown> = { __errno_location: n.__errno_location, fork: n.fork };
  symbols = new Proxy(bound, {
    get(target, name: string) {
      if (!(name in target)) {
        const fn = via[name] ?? (NR[name] !== undefined ? direct(name) : undefined);
        if (!fn) throw new Error(`ffi/libc: no system call behind ${name}`);
        target[name] = fn;
      }
      return target[name];
    },
  }) as unknown as Libc;
  return symbols;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A NUL-terminated copy of `s` for passing as `const char *`. */
export function cString(s: string): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(encoder.encode(s).length + 1);
  encoder.encodeInto(s, bytes);
  return bytes;
}

/** A NULL-terminated `char *[]` and the buffers it points into (keep both alive). */
function cStringArray(
  strings: readonly string[],
): { array: Uint8Array<ArrayBuffer>; keep: Uint8Array[] } {
  const keep = strings.map(cString);
  const pointers = new BigUint64Array(strings.length + 1);
  keep.forEach((b, i) => {
    pointers[i] = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(b)));
  });
  return { array: new Uint8Array(pointers.buffer), keep };
}

function pointerValue(buf: Uint8Array): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf)));
}

/** The calling thread's errno. */
export function errno(): number {
  const p = libc().__errno_location();
  return p === null ? 0 : new Deno.UnsafePointerView(p).getInt32();
}

/** Throws a SyscallError when `result` is negative. */
function check(result: number | bigint, call: string, subject?: string): number {
  if (result < 0) throw new SyscallError(call, errno(), subject);
  return Number(result);
}

function quote(path: string): string {
  return JSON.stringify(path);
}

function parseStatx(buf: Uint8Array): FileStat {
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  return {
    mode: v.getUint16(28, true),
    uid: v.getUint32(20, true),
    gid: v.getUint32(24, true),
    ino: v.getBigUint64(32, true),
    size: v.getBigUint64(40, true),
    nlink: v.getUint32(16, true),
    blocks: v.getBigUint64(48, true),
    atimeNs: v.getBigInt64(64, true) * 1_000_000_000n + BigInt(v.getUint32(72, true)),
    mtimeNs: v.getBigInt64(112, true) * 1_000_000_000n + BigInt(v.getUint32(120, true)),
    rdevMajor: v.getUint32(128, true),
    rdevMinor: v.getUint32(132, true),
    devMajor: v.getUint32(136, true),
    devMinor: v.getUint32(140, true),
  };
}

/** Linux's encoding of a device number (makedev). */
function makedev(major: number, minor: number): bigint {
  const ma = BigInt(major), mi = BigInt(minor);
  return ((ma & 0xfffff000n) << 32n) | ((ma & 0xfffn) << 8n) | ((mi & 0xffffff00n) << 12n) |
    (mi & 0xffn);
}

/** The top of the user address space on x86_64 and aarch64 (47/48-bit); madvise stops at the first hole it cannot walk. */
const USER_SPACE_END = 0x1000000000000n;

/**
 * Address ranges that cover every mapping except the kernel's special ones
 * ([vvar] and friends refuse madvise with EINVAL, which would stop the walk).
 * They never move, so this is computed once per process.
 */
function forkRanges(): [bigint, bigint][] {
  let maps = "";
  try {
    maps = Deno.readTextFileSync("/proc/self/maps");
  } catch {
    // no /proc: one range, the kernel walks what it can
  }
  const special: [bigint, bigint][] = [];
  for (const line of maps.split("\n")) {
    if (!/\[(vvar|vvar_vclock|vsyscall|vectors|sigpage)\]/.test(line)) continue;
    const [range] = line.split(" ", 1);
    const [a, b] = range!.split("-");
    special.push([BigInt("0x" + a), BigInt("0x" + b)]);
  }
  special.sort((x, y) => (x[0] < y[0] ? -1 : 1));
  const ranges: [bigint, bigint][] = [];
  let from = 0n;
  for (const [a, b] of special) {
    if (a > from) ranges.push([from, a - from]);
    from = b > from ? b : from;
  }
  if (from < USER_SPACE_END) ranges.push([from, USER_SPACE_END - from]);
  return ranges;
}

/** glibc's fork(), found with dlsym (in libc.so.6 since glibc 2.34, in libdl.so.2 before). */
function forkAddress(): bigint {
  const name = cString("fork");
  for (const file of ["libc.so.6", "libdl.so.2"]) {
    let lib;
    try {
      lib = Deno.dlopen(file, { dlsym: { parameters: ["pointer", "buffer"], result: "pointer" } });
    } catch {
      continue;
    }
    try {
      const address = BigInt(Deno.UnsafePointer.value(lib.symbols.dlsym(null, name))); // RTLD_DEFAULT
      if (address !== 0n) return address;
    } finally {
      lib.close();
    }
  }
  throw new Error("dlsym found no fork()");
}

/**
 * `fork` preceded by MADV_DOFORK over `ranges`, as one native function
 * (ffi/fork_code.ts) written into a page of its own and made executable.
 */
function nativeFork(ranges: readonly [bigint, bigint][]): () => number {
  const code = forkCode(Deno.build.arch, ranges, MADV_DOFORK, forkAddress());
  const size = 4096;
  if (code.length > size) throw new Error(`fork code is ${code.length} bytes`);
  const mmap = syscallOf(NR.mmap!),
    mprotect = syscallOf(NR.mprotect!),
    munmap = syscallOf(NR.munmap!);
  const page = mmap(0, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (page === -1) throw new SyscallError("mmap", errno(), "fork code");
  const pointer = Deno.UnsafePointer.create(BigInt(page))!;
  new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(pointer, size)).set(code);
  if (mprotect(page, size, PROT_READ | PROT_EXEC) !== 0) {
    const e = errno();
    munmap(page, size);
    throw new SyscallError("mprotect", e, "fork code");
  }
  const definition = { parameters: [], result: "i32" } as const;
  const fn = new Deno.UnsafeFnPointer(
    pointer as Deno.PointerObject<typeof definition>,
    definition,
  );
  return () => fn.call();
}

let cachedForkRanges: [bigint, bigint][] | undefined;
/** The native fork once made, or the error that kept it from being made. */
let cachedNativeFork: (() => number) | Error | undefined;

/** The native fork, made at the first call in this process; or the error that kept it from being made. */
function nativeForkOnce(): (() => number) | Error {
  if (cachedNativeFork === undefined) {
    try {
      cachedNativeFork = nativeFork(cachedForkRanges ??= forkRanges());
    } catch (e) {
      cachedNativeFork = e instanceof Error ? e : new Error(String(e));
    }
  }
  return cachedNativeFork;
}

/**
 * How `LibcSyscall.fork` forks in this process: "native" (the pass and the fork
 * in native code), or why it falls back to making the pass from JavaScript.
 */
export function forkMode(): string {
  const native = nativeForkOnce();
  return typeof native === "function" ? "native" : native.message;
}

/** {@link Syscall} over glibc. One instance serves the whole process. */
export class LibcSyscall implements Syscall {
  unshare(flags: number): void {
    check(libc().unshare(flags), "unshare", `0x${flags.toString(16)}`);
  }
  setns(fd: number, nstype: number): void {
    check(libc().setns(fd, nstype), "setns", `fd ${fd}`);
  }
  mount(
    source: string | null,
    target: string,
    fstype: string | null,
    flags: number,
    data: string | null,
  ): void {
    const r = libc().mount(
      source === null ? null : cString(source),
      cString(target),
      fstype === null ? null : cString(fstype),
      BigInt(flags),
      data === null ? null : cString(data),
    );
    check(r, "mount", `${quote(source ?? fstype ?? "none")} on ${quote(target)}`);
  }
  umount2(target: string, flags: number): void {
    check(libc().umount2(cString(target), flags), "umount", quote(target));
  }
  async umount2Async(target: string, flags: number): Promise<boolean> {
    const path = cString(target);
    const r = await libc().umount2_async(path, flags);
    // errno is not readable after a nonblocking call; reading `path` here keeps it alive until then.
    return r === 0 && path.length > 0;
  }
  pivotRoot(newRoot: string, putOld: string): void {
    check(libc().pivot_root(cString(newRoot), cString(putOld)), "pivot_root", quote(newRoot));
  }
  chdir(path: string): void {
    check(libc().chdir(cString(path)), "chdir", quote(path));
  }
  fchdir(fd: number): void {
    check(libc().fchdir(fd), "fchdir", `fd ${fd}`);
  }
  chroot(path: string): void {
    check(libc().chroot(cString(path)), "chroot", quote(path));
  }
  sethostname(name: string): void {
    const b = encoder.encode(name);
    check(libc().sethostname(b, BigInt(b.length)), "sethostname", quote(name));
  }
  setdomainname(name: string): void {
    const b = encoder.encode(name);
    check(libc().setdomainname(b, BigInt(b.length)), "setdomainname", quote(name));
  }
  setresuid(ruid: number, euid: number, suid: number): void {
    check(libc().setresuid(ruid, euid, suid), "setresuid", String(euid));
  }
  setresgid(rgid: number, egid: number, sgid: number): void {
    check(libc().setresgid(rgid, egid, sgid), "setresgid", String(egid));
  }
  setgroups(gids: readonly number[]): void {
    const list = new Uint32Array(Math.max(gids.length, 1));
    list.set(gids);
    check(libc().setgroups(BigInt(gids.length), new Uint8Array(list.buffer)), "setgroups");
  }
  capget(): CapSets {
    const header = new Uint32Array([LINUX_CAPABILITY_VERSION_3, 0]);
    const data = new Uint32Array(6);
    check(libc().capget(new Uint8Array(header.buffer), new Uint8Array(data.buffer)), "capget");
    const join = (lo: number, hi: number) => BigInt(lo) | (BigInt(hi) << 32n);
    return {
      effective: join(data[0]!, data[3]!),
      permitted: join(data[1]!, data[4]!),
      inheritable: join(data[2]!, data[5]!),
    };
  }
  capset(sets: CapSets): void {
    const header = new Uint32Array([LINUX_CAPABILITY_VERSION_3, 0]);
    const lo = (v: bigint) => Number(v & 0xffffffffn);
    const hi = (v: bigint) => Number((v >> 32n) & 0xffffffffn);
    const data = new Uint32Array([
      lo(sets.effective),
      lo(sets.permitted),
      lo(sets.inheritable),
      hi(sets.effective),
      hi(sets.permitted),
      hi(sets.inheritable),
    ]);
    check(libc().capset(new Uint8Array(header.buffer), new Uint8Array(data.buffer)), "capset");
  }
  prctl(option: number, arg2 = 0, arg3 = 0, arg4 = 0, arg5 = 0): number {
    const r = libc().prctl(option, BigInt(arg2), BigInt(arg3), BigInt(arg4), BigInt(arg5));
    return check(r, "prctl", String(option));
  }
  setrlimit(resource: number, soft: bigint, hard: bigint): void {
    const limit = new BigUint64Array([soft, hard]);
    check(libc().setrlimit(resource, new Uint8Array(limit.buffer)), "setrlimit", String(resource));
  }
  umask(mask: number): number {
    return libc().umask(mask);
  }
  open(path: string, flags: number, mode = 0): number {
    return check(libc().open(cString(path), flags, mode), "open", quote(path));
  }
  openat(dirfd: number, path: string, flags: number, mode = 0): number {
    return check(libc().openat(dirfd, cString(path), flags, mode), "openat", quote(path));
  }
  close(fd: number): void {
    check(libc().close(fd), "close", `fd ${fd}`);
  }
  closeRange(first: number, last: number, flags = 0): void {
    check(libc().close_range(first, last >>> 0, flags), "close_range", `${first}..${last >>> 0}`);
  }
  openFds(): number[] {
    // The listing's own directory fd shows up too; it is closed by the time the caller acts.
    return [...Deno.readDirSync("/proc/self/fd")].map((e) => Number(e.name)).sort((a, b) => a - b);
  }
  dup2(oldfd: number, newfd: number): void {
    check(libc().dup2(oldfd, newfd), "dup2", `fd ${oldfd} to ${newfd}`);
  }
  read(fd: number, buf: Uint8Array): number {
    for (;;) {
      const r = libc().read(fd, buf, BigInt(buf.length));
      if (r >= 0) return Number(r);
      const e = errno();
      if (e !== ERRNO.EINTR!) throw new SyscallError("read", e, `fd ${fd}`);
    }
  }
  write(fd: number, buf: Uint8Array): number {
    for (;;) {
      const r = libc().write(fd, buf, BigInt(buf.length));
      if (r >= 0) return Number(r);
      const e = errno();
      if (e !== ERRNO.EINTR!) throw new SyscallError("write", e, `fd ${fd}`);
    }
  }
  mkdir(path: string, mode: number): void {
    check(libc().mkdir(cString(path), mode), "mkdir", quote(path));
  }
  rmdir(path: string): void {
    check(libc().rmdir(cString(path)), "rmdir", quote(path));
  }
  unlink(path: string): void {
    check(libc().unlink(cString(path)), "unlink", quote(path));
  }
  mknod(path: string, mode: number, major: number, minor: number): void {
    check(libc().mknod(cString(path), mode, makedev(major, minor)), "mknod", quote(path));
  }
  mkfifo(path: string, mode: number): void {
    check(libc().mkfifo(cString(path), mode), "mkfifo", quote(path));
  }
  symlink(target: string, path: string): void {
    check(libc().symlink(cString(target), cString(path)), "symlink", quote(path));
  }
  readlink(path: string): string {
    const buf = new Uint8Array(4096);
    const n = check(
      libc().readlink(cString(path), buf, BigInt(buf.length)),
      "readlink",
      quote(path),
    );
    return decoder.decode(buf.subarray(0, n));
  }
  chown(path: string, uid: number, gid: number): void {
    check(libc().chown(cString(path), uid, gid), "chown", quote(path));
  }
  chmod(path: string, mode: number): void {
    check(libc().chmod(cString(path), mode), "chmod", quote(path));
  }
  stat(path: string, followSymlinks = true, dirfd = AT_FDCWD): FileStat {
    const buf = new Uint8Array(256);
    const flags = followSymlinks ? 0 : AT_SYMLINK_NOFOLLOW;
    check(libc().statx(dirfd, cString(path), flags, STATX_BASIC_STATS, buf), "stat", quote(path));
    return parseStatx(buf);
  }
  flock(fd: number, operation: number): void {
    check(libc().flock(fd, operation), "flock", `fd ${fd}`);
  }
  fstat(fd: number): FileStat {
    const buf = new Uint8Array(256);
    check(libc().statx(fd, cString(""), AT_EMPTY_PATH, STATX_BASIC_STATS, buf), "stat", `fd ${fd}`);
    return parseStatx(buf);
  }
  writeFile(
    path: string,
    data: string | Uint8Array,
    options: { create?: boolean; mode?: number; append?: boolean } = {},
  ): void {
    const bytes = typeof data === "string" ? encoder.encode(data) : data;
    let flags = O_WRONLY | O_CLOEXEC | (options.append ? O_APPEND : O_TRUNC);
    if (options.create) flags |= O_CREAT;
    const fd = this.open(path, flags, options.mode ?? 0o644);
    try {
      let off = 0;
      while (off < bytes.length) {
        const n = libc().write(fd, bytes.subarray(off), BigInt(bytes.length - off));
        if (n < 0) {
          const e = errno();
          if (e === 4) continue;
          throw new SyscallError("write", e, quote(path));
        }
        off += Number(n);
      }
    } finally {
      libc().close(fd);
    }
  }
  readFile(path: string): Uint8Array {
    const fd = this.open(path, O_RDONLY | O_CLOEXEC);
    try {
      const chunks: Uint8Array[] = [];
      let total = 0;
      for (;;) {
        const buf = new Uint8Array(65536);
        const n = this.read(fd, buf);
        if (n === 0) break;
        chunks.push(buf.subarray(0, n));
        total += n;
      }
      const out = new Uint8Array(total);
      let off = 0;
      for (const c of chunks) {
        out.set(c, off);
        off += c.length;
      }
      return out;
    } finally {
      libc().close(fd);
    }
  }
  ioctl(fd: number, request: number, arg: number | Uint8Array): number {
    const r = typeof arg === "number"
      ? libc().ioctl_int(fd, BigInt(request), BigInt(arg))
      : libc().ioctl_ptr(fd, BigInt(request), arg);
    return check(r, "ioctl", `fd ${fd} 0x${request.toString(16)}`);
  }
  bpf(cmd: number, attr: Uint8Array): number {
    const r = libc().syscall_bpf(BigInt(SYS_BPF), BigInt(cmd), attr, BigInt(attr.length));
    return check(r, "bpf", `command ${cmd}`);
  }
  statfs(path: string): StatFs {
    const buf = new Uint8Array(120);
    check(libc().statfs(cString(path), buf), "statfs", quote(path));
    // struct statfs on 64-bit Linux: f_type is the first long, f_flags at byte 80.
    const view = new DataView(buf.buffer);
    return { type: Number(view.getBigUint64(0, true)), flags: Number(view.getBigUint64(80, true)) };
  }
  getpid(): number {
    return libc().getpid();
  }
  getppid(): number {
    return libc().getppid();
  }
  fork(): number {
    // V8 marks every mapping it makes MADV_DONTFORK: undo that for the whole address space, then
    // fork, all in native code. Only where that code cannot be made (another architecture, or
    // executable pages refused) is the pass made from here, which leaves a window: V8 has been
    // seen mapping a heap page between two FFI calls, and a child then dies of SIGSEGV.
    const native = nativeForkOnce();
    if (typeof native === "function") return check(native(), "fork");
    const lib = libc();
    // Bind both symbols first: binding compiles a trampoline, which may map new (DONTFORK) pages.
    const madvise = lib.madvise;
    const fork = lib.fork;
    const ranges = (cachedForkRanges ??= forkRanges());
    for (let i = 0; i < ranges.length; i++) madvise(ranges[i]![0], ranges[i]![1], MADV_DOFORK);
    return check(fork(), "fork");
  }
  waitpid(pid: number, options: number): WaitResult {
    const status = new Int32Array(1);
    for (;;) {
      const r = libc().waitpid(pid, new Uint8Array(status.buffer), options);
      if (r >= 0) return { pid: r, status: status[0]! };
      const e = errno();
      if (e !== ERRNO.EINTR!) throw new SyscallError("waitpid", e, `pid ${pid}`);
    }
  }
  async waitpidAsync(pid: number): Promise<WaitResult> {
    const status = new Int32Array(1);
    for (;;) {
      // errno is not readable after a nonblocking call (it ran on another thread): EINTR is the only
      // failure worth retrying, and ECHILD (already reaped) surfaces as -1 twice in a row.
      const r = await libc().waitpid_async(pid, new Uint8Array(status.buffer), 0);
      if (r >= 0) return { pid: r, status: status[0]! };
      const again = libc().waitpid(pid, new Uint8Array(status.buffer), 1 /* WNOHANG */);
      if (again > 0) return { pid: again, status: status[0]! };
      if (again < 0) throw new SyscallError("waitpid", errno(), `pid ${pid}`);
    }
  }
  sleep(milliseconds: number): void {
    libc().usleep(Math.max(0, Math.round(milliseconds * 1000)));
  }
  kill(pid: number, signal: number): void {
    check(libc().kill(pid, signal), "kill", `pid ${pid}`);
  }
  setsid(): number {
    return check(libc().setsid(), "setsid");
  }
  execve(path: string, argv: readonly string[], envp: readonly string[]): never {
    const file = cString(path);
    const args = cStringArray(argv);
    const env = cStringArray(envp);
    libc().execve(file, args.array, env.array);
    const e = errno();
    // Keep the pointed-to buffers reachable until after the call.
    void args.keep, env.keep;
    throw new SyscallError("execve", e, quote(path));
  }
  exit(code: number): never {
    libc()._exit(code);
    throw new Error("unreachable: _exit returned");
  }
  resetSignals(signals?: readonly number[]): void {
    const lib = libc();
    for (const sig of signals ?? Array.from({ length: 64 }, (_, i) => i + 1)) {
      if (sig === 9 || sig === 19 || sig === 32 || sig === 33) continue;
      lib.signal(sig, null); // SIG_DFL is the null pointer
    }
    const empty = new Uint8Array(128);
    check(lib.sigprocmask(SIG_SETMASK, empty, null), "sigprocmask");
  }
  socketpair(type: number): [number, number] {
    const fds = new Int32Array(2);
    check(
      libc().socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, new Uint8Array(fds.buffer)),
      "socketpair",
    );
    return [fds[0]!, fds[1]!];
  }
  socket(domain: number, type: number, protocol = 0): number {
    return check(
      libc().socket(domain, type | SOCK_CLOEXEC, protocol),
      "socket",
      `domain ${domain}`,
    );
  }
  pipe(flags = 0): [number, number] {
    const fds = new Int32Array(2);
    check(libc().pipe2(new Uint8Array(fds.buffer), flags | O_CLOEXEC), "pipe2");
    return [fds[0]!, fds[1]!];
  }
  connectUnix(path: string): number {
    const fd = check(libc().socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket");
    const addr = new Uint8Array(110);
    new DataView(addr.buffer).setUint16(0, AF_UNIX, true);
    const p = encoder.encode(path);
    if (p.length > 107) {
      libc().close(fd);
      throw new SyscallError("connect", ERRNO.ENAMETOOLONG!, quote(path));
    }
    addr.set(p, 2);
    const r = libc().connect(fd, addr, 2 + p.length + 1);
    if (r < 0) {
      const e = errno();
      libc().close(fd);
      throw new SyscallError("connect", e, quote(path));
    }
    return fd;
  }
  sendFds(sock: number, data: Uint8Array, fds: readonly number[]): void {
    const payload = data.length > 0 ? data : new Uint8Array(1);
    const iov = new BigUint64Array([pointerValue(payload), BigInt(payload.length)]);
    const iovBytes = new Uint8Array(iov.buffer);
    const cmsgLen = 16 + 4 * fds.length;
    const control = new Uint8Array((cmsgLen + 7) & ~7);
    const cv = new DataView(control.buffer);
    cv.setBigUint64(0, BigInt(cmsgLen), true);
    cv.setInt32(8, SOL_SOCKET, true);
    cv.setInt32(12, SCM_RIGHTS, true);
    fds.forEach((fd, i) => cv.setInt32(16 + 4 * i, fd, true));
    const msg = new Uint8Array(56);
    const mv = new DataView(msg.buffer);
    mv.setBigUint64(16, pointerValue(iovBytes), true);
    mv.setBigUint64(24, 1n, true);
    if (fds.length > 0) {
      mv.setBigUint64(32, pointerValue(control), true);
      mv.setBigUint64(40, BigInt(control.length), true);
    }
    for (;;) {
      const r = libc().sendmsg(sock, msg, 0);
      if (r >= 0) break;
      const e = errno();
      if (e !== 4) throw new SyscallError("sendmsg", e, `fd ${sock}`);
    }
    void payload, control;
  }
  recvFds(sock: number, maxData: number): { data: Uint8Array; fds: number[] } {
    const payload = new Uint8Array(Math.max(maxData, 1));
    const iov = new BigUint64Array([pointerValue(payload), BigInt(payload.length)]);
    const iovBytes = new Uint8Array(iov.buffer);
    const control = new Uint8Array(16 + 4 * 16);
    const msg = new Uint8Array(56);
    const mv = new DataView(msg.buffer);
    mv.setBigUint64(16, pointerValue(iovBytes), true);
    mv.setBigUint64(24, 1n, true);
    mv.setBigUint64(32, pointerValue(control), true);
    mv.setBigUint64(40, BigInt(control.length), true);
    let n: number;
    for (;;) {
      const r = libc().recvmsg(sock, msg, 0x40000000 /* MSG_CMSG_CLOEXEC */);
      if (r >= 0) {
        n = Number(r);
        break;
      }
      const e = errno();
      if (e !== 4) throw new SyscallError("recvmsg", e, `fd ${sock}`);
    }
    const fds: number[] = [];
    const controlLen = Number(mv.getBigUint64(40, true));
    const cv = new DataView(control.buffer);
    let off = 0;
    while (off + 16 <= controlLen) {
      const len = Number(cv.getBigUint64(off, true));
      if (len < 16) break;
      if (cv.getInt32(off + 8, true) === SOL_SOCKET && cv.getInt32(off + 12, true) === SCM_RIGHTS) {
        for (let p = off + 16; p + 4 <= off + len; p += 4) fds.push(cv.getInt32(p, true));
      }
      off += (len + 7) & ~7;
    }
    return { data: payload.subarray(0, n), fds };
  }
  sendUnixDatagram(path: string, data: Uint8Array): void {
    const name = encoder.encode(path);
    const abstract = path.startsWith("@");
    if (name.length > 107 || name.length < 1) {
      throw new SyscallError("connect", ERRNO.ENAMETOOLONG!, quote(path));
    }
    const addr = new Uint8Array(110);
    new DataView(addr.buffer).setUint16(0, AF_UNIX, true);
    addr.set(name, 2);
    if (abstract) addr[2] = 0; // the abstract namespace: a leading NUL, no terminator
    const fd = check(libc().socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0), "socket");
    try {
      if (libc().connect(fd, addr, 2 + name.length + (abstract ? 0 : 1)) < 0) {
        throw new SyscallError("connect", errno(), quote(path));
      }
      for (;;) {
        const r = libc().write(fd, data, BigInt(data.length));
        if (r >= 0) break;
        const e = errno();
        if (e !== 4) throw new SyscallError("send", e, quote(path));
      }
    } finally {
      libc().close(fd);
    }
  }
  openPty(ptmx: string): { master: number; slavePath: string } {
    const master = this.open(ptmx, O_RDWR | O_NOCTTY | O_CLOEXEC);
    try {
      this.ioctl(master, TIOCSPTLCK, new Uint8Array(4));
      const name = new Uint8Array(128);
      const r = libc().ptsname_r(master, name, BigInt(name.length));
      if (r !== 0) throw new SyscallError("ptsname", r, quote(ptmx));
      const slavePath = decoder.decode(name.subarray(0, name.indexOf(0)));
      return { master, slavePath };
    } catch (err) {
      libc().close(master);
      throw err;
    }
  }
  getWinsize(fd: number): WinSize {
    const ws = new Uint16Array(4);
    this.ioctl(fd, TIOCGWINSZ, new Uint8Array(ws.buffer));
    return { rows: ws[0]!, cols: ws[1]! };
  }
  setWinsize(fd: number, size: WinSize): void {
    const ws = new Uint16Array([size.rows, size.cols, 0, 0]);
    this.ioctl(fd, TIOCSWINSZ, new Uint8Array(ws.buffer));
  }
  openat2(dirfd: number, path: string, flags: number, mode: number, resolve: number): number {
    const how = new BigUint64Array([BigInt(flags), BigInt(mode), BigInt(resolve)]);
    const r = libc().syscall_openat2(
      BigInt(SYS_OPENAT2),
      dirfd,
      cString(path),
      new Uint8Array(how.buffer),
      BigInt(how.byteLength),
    );
    return check(r, "openat2", quote(path));
  }
  mkdirat(dirfd: number, path: string, mode: number): void {
    check(libc().mkdirat(dirfd, cString(path), mode), "mkdirat", quote(path));
  }
  mknodat(dirfd: number, path: string, mode: number, major: number, minor: number): void {
    check(
      libc().mknodat(dirfd, cString(path), mode, makedev(major, minor)),
      "mknodat",
      quote(path),
    );
  }
  symlinkat(target: string, dirfd: number, path: string): void {
    check(libc().symlinkat(cString(target), dirfd, cString(path)), "symlinkat", quote(path));
  }
  linkat(
    olddirfd: number,
    oldpath: string,
    newdirfd: number,
    newpath: string,
    flags: number,
  ): void {
    const r = libc().linkat(olddirfd, cString(oldpath), newdirfd, cString(newpath), flags);
    check(r, "linkat", `${quote(newpath)} to ${quote(oldpath)}`);
  }
  unlinkat(dirfd: number, path: string, flags: number): void {
    check(libc().unlinkat(dirfd, cString(path), flags), "unlinkat", quote(path));
  }
  fchownat(dirfd: number, path: string, uid: number, gid: number, flags: number): void {
    check(libc().fchownat(dirfd, cString(path), uid, gid, flags), "fchownat", quote(path));
  }
  fchmodat(dirfd: number, path: string, mode: number): void {
    check(libc().fchmodat(dirfd, cString(path), mode, 0), "fchmodat", quote(path));
  }
  fchmod(fd: number, mode: number): void {
    check(libc().fchmod(fd, mode), "fchmod", `fd ${fd}`);
  }
  utimensat(dirfd: number, path: string, atimeNs: bigint, mtimeNs: bigint, flags: number): void {
    const times = timespecPair(atimeNs, mtimeNs);
    check(libc().utimensat(dirfd, cString(path), times, flags), "utimensat", quote(path));
  }
  futimens(fd: number, atimeNs: bigint, mtimeNs: bigint): void {
    check(libc().futimens(fd, timespecPair(atimeNs, mtimeNs)), "futimens", `fd ${fd}`);
  }
  lsetxattr(path: string, name: string, value: Uint8Array, flags = 0): void {
    const r = libc().lsetxattr(cString(path), cString(name), value, BigInt(value.length), flags);
    check(r, "lsetxattr", `${quote(path)} ${name}`);
  }
  fsetxattr(fd: number, name: string, value: Uint8Array, flags = 0): void {
    const r = libc().fsetxattr(fd, cString(name), value, BigInt(value.length), flags);
    check(r, "fsetxattr", `fd ${fd} ${name}`);
  }
  lgetxattr(path: string, name: string): Uint8Array {
    const p = cString(path), n = cString(name);
    for (;;) {
      const size = check(libc().lgetxattr(p, n, null, 0n), "lgetxattr", `${quote(path)} ${name}`);
      const buf = new Uint8Array(size);
      const r = libc().lgetxattr(p, n, buf, BigInt(size));
      if (r >= 0) return buf.subarray(0, Number(r));
      const e = errno();
      if (e !== 34 /* ERANGE: it grew in between */) {
        throw new SyscallError("lgetxattr", e, `${quote(path)} ${name}`);
      }
    }
  }
  llistxattr(path: string): string[] {
    const p = cString(path);
    for (;;) {
      const size = check(libc().llistxattr(p, null, 0n), "llistxattr", quote(path));
      if (size === 0) return [];
      const buf = new Uint8Array(size);
      const r = libc().llistxattr(p, buf, BigInt(size));
      if (r >= 0) {
        return decoder.decode(buf.subarray(0, Number(r))).split("\0").filter((n) => n !== "");
      }
      const e = errno();
      if (e !== ERRNO.ERANGE!) throw new SyscallError("llistxattr", e, quote(path));
    }
  }
  syncfs(fd: number): void {
    check(libc().syncfs(fd), "syncfs", `fd ${fd}`);
  }
  readlinkat(dirfd: number, path: string): string {
    const buf = new Uint8Array(4096);
    const r = libc().readlinkat(dirfd, cString(path), buf, BigInt(buf.length));
    const n = check(r, "readlinkat", path === "" ? `fd ${dirfd}` : quote(path));
    return decoder.decode(buf.subarray(0, n));
  }
  readdir(fd: number): string[] {
    const names: string[] = [];
    const buf = new Uint8Array(32768);
    const view = new DataView(buf.buffer);
    for (;;) {
      const n = check(libc().getdents64(fd, buf, BigInt(buf.length)), "getdents64", `fd ${fd}`);
      if (n === 0) return names;
      // struct linux_dirent64: u64 d_ino, s64 d_off, u16 d_reclen, u8 d_type, char d_name[]
      for (let off = 0; off < n;) {
        const reclen = view.getUint16(off + 16, true);
        const start = off + 19;
        const name = decoder.decode(buf.subarray(start, buf.indexOf(0, start)));
        if (name !== "." && name !== "..") names.push(name);
        off += reclen;
      }
    }
  }
}

/** A `struct timespec[2]` for utimensat/futimens from nanoseconds since the epoch. */
function timespecPair(atimeNs: bigint, mtimeNs: bigint): Uint8Array<ArrayBuffer> {
  const split = (ns: bigint): [bigint, bigint] => {
    let sec = ns / 1_000_000_000n;
    let nsec = ns % 1_000_000_000n;
    if (nsec < 0n) {
      sec -= 1n;
      nsec += 1_000_000_000n;
    }
    return [sec, nsec];
  };
  return new Uint8Array(new BigInt64Array([...split(atimeNs), ...split(mtimeNs)]).buffer);
}

let shared: LibcSyscall | undefined;

/** The process-wide real Syscall. */
export function libcSyscall(): LibcSyscall {
  shared ??= new LibcSyscall();
  return shared;
}
