/**
 * Kernel and glibc constants for Linux on x86_64 and aarch64, in one place.
 * Values that differ between the two architectures are chosen by
 * `Deno.build.arch`; everything else uses the asm-generic numbering both share.
 *
 * @module
 */

const ARM64 = Deno.build.arch === "aarch64";

// clone(2) / unshare(2) / setns(2) flags.
export const CLONE_NEWTIME = 0x00000080;
export const CLONE_FS = 0x00000200;
export const CLONE_FILES = 0x00000400;
export const CLONE_NEWNS = 0x00020000;
export const CLONE_NEWCGROUP = 0x02000000;
export const CLONE_NEWUTS = 0x04000000;
export const CLONE_NEWIPC = 0x08000000;
export const CLONE_NEWUSER = 0x10000000;
export const CLONE_NEWPID = 0x20000000;
export const CLONE_NEWNET = 0x40000000;

/** OCI namespace type → clone flag and the file under /proc/<pid>/ns/. */
export const NAMESPACES: Readonly<Record<string, { flag: number; file: string }>> = {
  pid: { flag: CLONE_NEWPID, file: "pid" },
  network: { flag: CLONE_NEWNET, file: "net" },
  mount: { flag: CLONE_NEWNS, file: "mnt" },
  ipc: { flag: CLONE_NEWIPC, file: "ipc" },
  uts: { flag: CLONE_NEWUTS, file: "uts" },
  user: { flag: CLONE_NEWUSER, file: "user" },
  cgroup: { flag: CLONE_NEWCGROUP, file: "cgroup" },
  time: { flag: CLONE_NEWTIME, file: "time" },
};

// mount(2) flags.
export const MS_RDONLY = 0x1;
export const MS_NOSUID = 0x2;
export const MS_NODEV = 0x4;
export const MS_NOEXEC = 0x8;
export const MS_SYNCHRONOUS = 0x10;
export const MS_REMOUNT = 0x20;
export const MS_MANDLOCK = 0x40;
export const MS_DIRSYNC = 0x80;
export const MS_NOSYMFOLLOW = 0x100;
export const MS_NOATIME = 0x400;
export const MS_NODIRATIME = 0x800;
export const MS_BIND = 0x1000;
export const MS_MOVE = 0x2000;
export const MS_REC = 0x4000;
export const MS_SILENT = 0x8000;
export const MS_UNBINDABLE = 0x20000;
export const MS_PRIVATE = 0x40000;
export const MS_SLAVE = 0x80000;
export const MS_SHARED = 0x100000;
export const MS_RELATIME = 0x200000;
export const MS_STRICTATIME = 0x1000000;
export const MS_LAZYTIME = 0x2000000;
export const MS_PROPAGATION = MS_SHARED | MS_SLAVE | MS_PRIVATE | MS_UNBINDABLE;

// umount2(2) flags.
export const MNT_FORCE = 1;
export const MNT_DETACH = 2;
export const MNT_EXPIRE = 4;
export const UMOUNT_NOFOLLOW = 8;

// open(2) flags.
export const O_RDONLY = 0;
export const O_WRONLY = 1;
export const O_RDWR = 2;
export const O_CREAT = 0o100;
export const O_EXCL = 0o200;
export const O_NOCTTY = 0o400;
export const O_TRUNC = 0o1000;
export const O_APPEND = 0o2000;
export const O_NONBLOCK = 0o4000;
export const O_DIRECTORY = ARM64 ? 0o40000 : 0o200000;
export const O_NOFOLLOW = ARM64 ? 0o100000 : 0o400000;
export const O_CLOEXEC = 0o2000000;
export const O_PATH = 0o10000000;
export const AT_FDCWD = -100;
export const AT_SYMLINK_NOFOLLOW = 0x100;
export const AT_EMPTY_PATH = 0x1000;
export const AT_STATX_SYNC_AS_STAT = 0;
export const STATX_BASIC_STATS = 0x7ff;

// File types in st_mode.
export const S_IFMT = 0o170000;
export const S_IFSOCK = 0o140000;
export const S_IFLNK = 0o120000;
export const S_IFREG = 0o100000;
export const S_IFBLK = 0o060000;
export const S_IFDIR = 0o040000;
export const S_IFCHR = 0o020000;
export const S_IFIFO = 0o010000;

// statfs(2) f_type values, and what procfs guarantees of its root (include/linux/proc_ns.h).
export const PROC_SUPER_MAGIC = 0x9fa0;
/** The inode number of a procfs's root directory, and of nothing else on it. */
export const PROC_ROOT_INO = 1n;

// prctl(2) options.
export const PR_SET_PDEATHSIG = 1;
export const PR_SET_DUMPABLE = 4;
export const PR_SET_KEEPCAPS = 8;
export const PR_SET_NAME = 15;
export const PR_CAPBSET_READ = 23;
export const PR_CAPBSET_DROP = 24;
export const PR_SET_CHILD_SUBREAPER = 36;
export const PR_SET_NO_NEW_PRIVS = 38;
export const PR_GET_NO_NEW_PRIVS = 39;
export const PR_CAP_AMBIENT = 47;
export const PR_CAP_AMBIENT_RAISE = 2;
export const PR_CAP_AMBIENT_CLEAR_ALL = 4;

// capget/capset.
export const LINUX_CAPABILITY_VERSION_3 = 0x20080522;

/** Capability names in kernel order: the index is the capability number. */
export const CAPABILITIES: readonly string[] = [
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_DAC_READ_SEARCH",
  "CAP_FOWNER",
  "CAP_FSETID",
  "CAP_KILL",
  "CAP_SETGID",
  "CAP_SETUID",
  "CAP_SETPCAP",
  "CAP_LINUX_IMMUTABLE",
  "CAP_NET_BIND_SERVICE",
  "CAP_NET_BROADCAST",
  "CAP_NET_ADMIN",
  "CAP_NET_RAW",
  "CAP_IPC_LOCK",
  "CAP_IPC_OWNER",
  "CAP_SYS_MODULE",
  "CAP_SYS_RAWIO",
  "CAP_SYS_CHROOT",
  "CAP_SYS_PTRACE",
  "CAP_SYS_PACCT",
  "CAP_SYS_ADMIN",
  "CAP_SYS_BOOT",
  "CAP_SYS_NICE",
  "CAP_SYS_RESOURCE",
  "CAP_SYS_TIME",
  "CAP_SYS_TTY_CONFIG",
  "CAP_MKNOD",
  "CAP_LEASE",
  "CAP_AUDIT_WRITE",
  "CAP_AUDIT_CONTROL",
  "CAP_SETFCAP",
  "CAP_MAC_OVERRIDE",
  "CAP_MAC_ADMIN",
  "CAP_SYSLOG",
  "CAP_WAKE_ALARM",
  "CAP_BLOCK_SUSPEND",
  "CAP_AUDIT_READ",
  "CAP_PERFMON",
  "CAP_BPF",
  "CAP_CHECKPOINT_RESTORE",
];

// setrlimit(2) resources, by OCI name.
export const RLIMITS: Readonly<Record<string, number>> = {
  RLIMIT_CPU: 0,
  RLIMIT_FSIZE: 1,
  RLIMIT_DATA: 2,
  RLIMIT_STACK: 3,
  RLIMIT_CORE: 4,
  RLIMIT_RSS: 5,
  RLIMIT_NPROC: 6,
  RLIMIT_NOFILE: 7,
  RLIMIT_MEMLOCK: 8,
  RLIMIT_AS: 9,
  RLIMIT_LOCKS: 10,
  RLIMIT_SIGPENDING: 11,
  RLIMIT_MSGQUEUE: 12,
  RLIMIT_NICE: 13,
  RLIMIT_RTPRIO: 14,
  RLIMIT_RTTIME: 15,
};

/** Signal numbers by name (x86_64 and aarch64 share them). */
export const SIGNALS: Readonly<Record<string, number>> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGILL: 4,
  SIGTRAP: 5,
  SIGABRT: 6,
  SIGIOT: 6,
  SIGBUS: 7,
  SIGFPE: 8,
  SIGKILL: 9,
  SIGUSR1: 10,
  SIGSEGV: 11,
  SIGUSR2: 12,
  SIGPIPE: 13,
  SIGALRM: 14,
  SIGTERM: 15,
  SIGSTKFLT: 16,
  SIGCHLD: 17,
  SIGCONT: 18,
  SIGSTOP: 19,
  SIGTSTP: 20,
  SIGTTIN: 21,
  SIGTTOU: 22,
  SIGURG: 23,
  SIGXCPU: 24,
  SIGXFSZ: 25,
  SIGVTALRM: 26,
  SIGPROF: 27,
  SIGWINCH: 28,
  SIGIO: 29,
  SIGPOLL: 29,
  SIGPWR: 30,
  SIGSYS: 31,
};
export const SIGRTMIN = 34;
export const SIGRTMAX = 64;

// waitpid(2) options.
export const WNOHANG = 1;

// Terminal ioctls (asm-generic, same on x86_64 and aarch64).
export const TIOCSCTTY = 0x540e;
export const TIOCGWINSZ = 0x5413;
export const TIOCSWINSZ = 0x5414;
export const TIOCGPTN = 0x80045430;
export const TIOCSPTLCK = 0x40045431;
export const TIOCGPTPEER = 0x5441;

// Sockets.
export const AF_UNIX = 1;
export const AF_INET = 2;
export const SOCK_STREAM = 1;
export const SOCK_DGRAM = 2;
export const SOCK_SEQPACKET = 5;
export const SOCK_CLOEXEC = O_CLOEXEC;
export const SOL_SOCKET = 1;
export const SCM_RIGHTS = 1;
/** Network interface flags (struct ifreq: name in 16 bytes, then ifr_flags). */
export const SIOCGIFFLAGS = 0x8913;
export const SIOCSIFFLAGS = 0x8914;
export const IFF_UP = 0x1;
export const MSG_CMSG_CLOEXEC = 0x40000000;

// close_range(2) flags.
export const CLOSE_RANGE_CLOEXEC = 4;

// flock(2) operations.
export const LOCK_EX = 2;
export const LOCK_NB = 4;

// mmap(2), mprotect(2), madvise(2).
export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const PROT_EXEC = 4;
export const MAP_PRIVATE = 0x02;
export const MAP_ANONYMOUS = 0x20;
export const MADV_DONTFORK = 10;
export const MADV_DOFORK = 11;

// sigprocmask(2).
export const SIG_SETMASK = 2;

// seccomp(2).
/** The seccomp system call's number (glibc has no wrapper for it). */
export const SYS_SECCOMP = ARM64 ? 277 : 317;
export const SECCOMP_SET_MODE_FILTER = 1;
export const SECCOMP_FILTER_FLAG_TSYNC = 1 << 0;
export const SECCOMP_FILTER_FLAG_LOG = 1 << 1;
export const SECCOMP_FILTER_FLAG_SPEC_ALLOW = 1 << 2;
export const SECCOMP_FILTER_FLAG_NEW_LISTENER = 1 << 3;
export const SECCOMP_FILTER_FLAG_TSYNC_ESRCH = 1 << 4;
export const SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV = 1 << 5;
/** AUDIT_ARCH_* values (linux/audit.h): what seccomp_data.arch holds. */
export const AUDIT_ARCH_X86_64 = 0xc000003e;
export const AUDIT_ARCH_I386 = 0x40000003;
export const AUDIT_ARCH_S390 = 0x00000016;
export const AUDIT_ARCH_S390X = 0x80000016;
/** Bit 30 of the syscall number marks an x32 call on x86_64. */
export const X32_SYSCALL_BIT = 0x40000000;

/** errno values by number (asm-generic numbering, shared by x86_64 and aarch64). */
export const ERRNO_NAMES: Readonly<Record<number, string>> = {
  1: "EPERM",
  2: "ENOENT",
  3: "ESRCH",
  4: "EINTR",
  5: "EIO",
  6: "ENXIO",
  7: "E2BIG",
  8: "ENOEXEC",
  9: "EBADF",
  10: "ECHILD",
  11: "EAGAIN",
  12: "ENOMEM",
  13: "EACCES",
  14: "EFAULT",
  15: "ENOTBLK",
  16: "EBUSY",
  17: "EEXIST",
  18: "EXDEV",
  19: "ENODEV",
  20: "ENOTDIR",
  21: "EISDIR",
  22: "EINVAL",
  23: "ENFILE",
  24: "EMFILE",
  25: "ENOTTY",
  26: "ETXTBSY",
  27: "EFBIG",
  28: "ENOSPC",
  29: "ESPIPE",
  30: "EROFS",
  31: "EMLINK",
  32: "EPIPE",
  33: "EDOM",
  34: "ERANGE",
  35: "EDEADLK",
  36: "ENAMETOOLONG",
  37: "ENOLCK",
  38: "ENOSYS",
  39: "ENOTEMPTY",
  40: "ELOOP",
  61: "ENODATA",
  75: "EOVERFLOW",
  88: "ENOTSOCK",
  95: "EOPNOTSUPP",
  98: "EADDRINUSE",
  104: "ECONNRESET",
  110: "ETIMEDOUT",
  111: "ECONNREFUSED",
  125: "ECANCELED",
};

// bpf(2), for cgroup v2 device filters.
/** The bpf system call's number (glibc has no wrapper for it). */
export const SYS_BPF = ARM64 ? 280 : 321;
export const BPF_PROG_LOAD = 5;
export const BPF_PROG_ATTACH = 8;
export const BPF_PROG_DETACH = 9;
export const BPF_PROG_GET_FD_BY_ID = 13;
export const BPF_PROG_QUERY = 16;
export const BPF_PROG_TYPE_CGROUP_DEVICE = 15;
export const BPF_CGROUP_DEVICE = 6;
export const BPF_F_ALLOW_MULTI = 2;
/** Size of the `union bpf_attr` buffer tug passes (the kernel accepts any size up to a page). */
export const BPF_ATTR_SIZE = 128;

/** errno numbers by name, the inverse of ERRNO_NAMES. */
export const ERRNO: Readonly<Record<string, number>> = Object.fromEntries(
  Object.entries(ERRNO_NAMES).map(([n, name]) => [name, Number(n)]),
);

/** The symbolic name of an errno value, or `errno <n>` when it has none here. */
export function errnoName(errno: number): string {
  return ERRNO_NAMES[errno] ?? `errno ${errno}`;
}

// *at(2) calls, openat2(2), xattrs (used by images/unpack and images/snapshots).
export const AT_REMOVEDIR = 0x200;
export const AT_SYMLINK_FOLLOW = 0x400;
/** The openat2 system call's number (the same on x86_64 and aarch64; glibc has no wrapper for it). */
export const SYS_OPENAT2 = 437;
/** openat2(2) `resolve` flags. */
export const RESOLVE_NO_XDEV = 0x01;
export const RESOLVE_NO_MAGICLINKS = 0x02;
export const RESOLVE_NO_SYMLINKS = 0x04;
export const RESOLVE_BENEATH = 0x08;
export const RESOLVE_IN_ROOT = 0x10;
/** setxattr(2) flags. */
export const XATTR_CREATE = 1;
export const XATTR_REPLACE = 2;

/**
 * System call numbers, for glibc's generic syscall(): tug binds that one
 * symbol instead of a trampoline per libc function (ffi/libc.ts).
 */
export const NR: Readonly<Record<string, number>> = ARM64
  ? {
    read: 63,
    write: 64,
    close: 57,
    ioctl: 29,
    madvise: 233,
    mmap: 222,
    mprotect: 226,
    munmap: 215,
    dup3: 24,
    fcntl: 25,
    getpid: 172,
    getppid: 173,
    socket: 198,
    connect: 203,
    sendmsg: 211,
    recvmsg: 212,
    socketpair: 199,
    execve: 221,
    exit_group: 94,
    wait4: 260,
    kill: 129,
    umask: 166,
    setsid: 157,
    setresuid: 147,
    setresgid: 149,
    setgroups: 159,
    capget: 90,
    capset: 91,
    rt_sigaction: 134,
    rt_sigprocmask: 135,
    statfs: 43,
    prctl: 167,
    pivot_root: 41,
    chroot: 51,
    chdir: 49,
    fchdir: 50,
    mount: 40,
    umount2: 39,
    sethostname: 161,
    setdomainname: 162,
    unshare: 97,
    setns: 268,
    openat: 56,
    mkdirat: 34,
    mknodat: 33,
    fchownat: 54,
    unlinkat: 35,
    linkat: 37,
    symlinkat: 36,
    readlinkat: 78,
    fchmodat: 53,
    fchmodat2: 452,
    fchmod: 52,
    prlimit64: 261,
    statx: 291,
    close_range: 436,
    flock: 32,
    nanosleep: 101,
    utimensat: 88,
    lsetxattr: 6,
    fsetxattr: 7,
    lgetxattr: 9,
    llistxattr: 12,
    syncfs: 267,
    bpf: 280,
    openat2: 437,
    seccomp: 277,
    epoll_create1: 20,
    epoll_ctl: 21,
    pipe2: 59,
    waitid: 95,
    getdents64: 61,
  }
  : {
    read: 0,
    write: 1,
    close: 3,
    ioctl: 16,
    madvise: 28,
    mmap: 9,
    mprotect: 10,
    munmap: 11,
    dup3: 292,
    fcntl: 72,
    getpid: 39,
    getppid: 110,
    socket: 41,
    connect: 42,
    sendmsg: 46,
    recvmsg: 47,
    socketpair: 53,
    execve: 59,
    exit_group: 231,
    wait4: 61,
    kill: 62,
    umask: 95,
    setsid: 112,
    setresuid: 117,
    setresgid: 119,
    setgroups: 116,
    capget: 125,
    capset: 126,
    rt_sigaction: 13,
    rt_sigprocmask: 14,
    statfs: 137,
    prctl: 157,
    pivot_root: 155,
    chroot: 161,
    chdir: 80,
    fchdir: 81,
    mount: 165,
    umount2: 166,
    sethostname: 170,
    setdomainname: 171,
    unshare: 272,
    setns: 308,
    openat: 257,
    mkdirat: 258,
    mknodat: 259,
    fchownat: 260,
    unlinkat: 263,
    linkat: 265,
    symlinkat: 266,
    readlinkat: 267,
    fchmodat: 268,
    fchmodat2: 452,
    fchmod: 91,
    prlimit64: 302,
    statx: 332,
    close_range: 436,
    flock: 73,
    nanosleep: 35,
    utimensat: 280,
    lsetxattr: 189,
    fsetxattr: 190,
    lgetxattr: 192,
    llistxattr: 195,
    syncfs: 306,
    bpf: 321,
    openat2: 437,
    seccomp: 317,
    epoll_create1: 291,
    epoll_ctl: 233,
    pipe2: 293,
    waitid: 247,
    getdents64: 217,
  };
