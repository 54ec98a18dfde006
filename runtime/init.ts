/**
 * The container's init: the set-up sequence a forked child of `tug runtime
 * create` runs, synchronously and through the Syscall layer only, from the
 * fresh namespaces to execve. Its order follows runc's standard init:
 *
 * cgroup → join/unshare namespaces → mounts (rootfs, spec mounts, /dev) →
 * prestart/createRuntime hooks (in the parent) → createContainer hooks →
 * pivot_root → console → read-only root → hostname → sysctl → read-only and
 * masked paths → rlimits, oom score → no_new_privs → seccomp (early without
 * NNP) → bounding set, user, capabilities → cwd, umask → seccomp (late with
 * NNP) → report ready → wait for start on the exec fifo → startContainer
 * hooks → close every fd above the passed ones → execve.
 *
 * @module
 */

import {
  AF_INET,
  AT_EMPTY_PATH,
  AT_SYMLINK_NOFOLLOW,
  CLONE_NEWCGROUP,
  CLONE_NEWNET,
  CLONE_NEWTIME,
  ERRNO,
  IFF_UP,
  MNT_DETACH,
  MS_BIND,
  MS_NODEV,
  MS_NOEXEC,
  MS_NOSUID,
  MS_PRIVATE,
  MS_RDONLY,
  MS_REC,
  MS_REMOUNT,
  MS_SHARED,
  MS_SLAVE,
  O_CLOEXEC,
  O_CREAT,
  O_DIRECTORY,
  O_EXCL,
  O_NOCTTY,
  O_NOFOLLOW,
  O_NONBLOCK,
  O_PATH,
  O_RDONLY,
  O_RDWR,
  O_WRONLY,
  PR_SET_DUMPABLE,
  PR_SET_KEEPCAPS,
  PR_SET_NO_NEW_PRIVS,
  PR_SET_PDEATHSIG,
  PROC_ROOT_INO,
  PROC_SUPER_MAGIC,
  S_IFCHR,
  S_IFDIR,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
  SIGNALS,
  SIOCGIFFLAGS,
  SIOCSIFFLAGS,
  SOCK_DGRAM,
  TIOCSCTTY,
} from "../ffi/constants.ts";
import { type FileStat, type Syscall, SyscallError } from "../ffi/syscall.ts";
import { applyCapabilities, dropBoundingSet } from "./caps.ts";
import { runHookSync } from "./hooks.ts";
import { statfsToMountFlags } from "./mount_options.ts";
import {
  closeRoot,
  createFileInRoot,
  existsAt,
  existsNoFollow,
  fdPath,
  fileType,
  mkdirAllInRoot,
  named,
  openInRoot,
  openRoot,
  parentInRoot,
  pathInRoot,
  type Root,
} from "./paths.ts";
import { procMountRefusal } from "./proc_mounts.ts";
import { DEFAULT_DEVICES, type InitPlan, type PlannedDevice, type PlannedMount } from "./plan.ts";
import type { State } from "./spec.ts";
import { OCI_VERSION } from "../version.ts";
import { trace } from "../trace.ts";

/** A v1 cgroup hierarchy (or the v2 one) to show inside the container at a `cgroup` mount. */
export interface CgroupMountInfo {
  /** Directory name under the mount point, e.g. `memory`, or "" for a v2 mount at the mount point itself. */
  name: string;
  /** Mount options naming the controllers, e.g. `memory` or `cpu,cpuacct`. */
  options: string;
  /** The container's cgroup directory on the host, for bind mounting without a cgroup namespace. */
  hostPath: string;
  version: 1 | 2;
}

/** What the init gets from the parent besides the plan: open fds and compiled objects. */
export interface InitContext {
  sys: Syscall;
  /** The init's end of the sync socket (SOCK_SEQPACKET). */
  syncFd: number;
  /**
   * The exec fifo, opened O_RDWR by the parent: the init blocks reading it until
   * `start` writes a byte (a reader that is also a writer never sees EOF).
   */
  fifoFd: number;
  /** Connected console socket, when the process wants a terminal. */
  consoleSocketFd?: number;
  /** Open fds of the namespaces to join, in plan.join order. */
  joinFds: number[];
  /**
   * How the init gets into the container's cgroup: "parent" means the parent
   * writes its pid into cgroup.procs right after the fork and then sends
   * `joined` (the kernel's RCU wait on that write then overlaps the init's own
   * work); a function is called by the init to enter it itself.
   */
  cgroup: "parent" | (() => void);
  /** Signals whose disposition is SIG_IGN in the parent (inherited; execve keeps them ignored). */
  ignoredSignals: number[];
  /** Hierarchies to show at `cgroup` mounts. */
  cgroupMounts: CgroupMountInfo[];
  /** A seccomp filter compiled by the parent; `load()` installs it. */
  seccomp?: { load(): number | undefined };
  /** How many fds above stdio are passed to the container (--preserve-fds). */
  preserveFds: number;
  /** Fds to become the process's stdin, stdout and stderr (default: the caller's own). */
  stdio?: [number, number, number];
  /** Whether the parent runs prestart/createRuntime hooks (the init pauses for them). */
  parentHooks: boolean;
}

/** Messages on the sync socket. */
export type SyncMessage =
  | { t: "joined" }
  | { t: "hooks" }
  | { t: "resume" }
  | { t: "warn"; m: string }
  | { t: "error"; m: string };

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Sends one sync message (one SEQPACKET datagram). */
export function sendSync(sys: Syscall, fd: number, msg: SyncMessage): void {
  sys.write(fd, encoder.encode(JSON.stringify(msg)));
}

/**
 * Reads one sync message; undefined at EOF (the peer closed its end). When the
 * peer went away with a message of ours unread, the kernel reports ECONNRESET
 * once; what the peer sent before is still queued behind it, so read on.
 */
export function readSync(sys: Syscall, fd: number): SyncMessage | undefined {
  const buf = new Uint8Array(65536);
  let n: number;
  try {
    n = sys.read(fd, buf);
  } catch (err) {
    if (!(err instanceof SyscallError) || err.errnoName !== "ECONNRESET") throw err;
    n = sys.read(fd, buf);
  }
  if (n === 0) return undefined;
  return JSON.parse(decoder.decode(buf.subarray(0, n))) as SyncMessage;
}

/**
 * Runs the container's init. Never returns: it ends in execve, or in
 * `_exit(1)` after sending the error to the parent.
 */
export function initContainer(plan: InitPlan, ctx: InitContext): never {
  const { sys } = ctx;
  let syncOpen = true;
  try {
    runInit(plan, ctx, () => {
      syncOpen = false;
    });
  } catch (err) {
    // A fake syscall layer ends the simulated process by throwing: let that through.
    if ((err as { endsProcess?: boolean })?.endsProcess) throw err;
    const message = err instanceof Error ? err.message : String(err);
    try {
      if (syncOpen) sendSync(sys, ctx.syncFd, { t: "error", m: message });
      else sys.write(2, encoder.encode(`tug: container init: ${message}\n`));
    } catch {
      // nobody to tell
    }
  }
  return sys.exit(1);
}

function warn(ctx: InitContext, message: string): void {
  sendSync(ctx.sys, ctx.syncFd, { t: "warn", m: message });
}

function runInit(plan: InitPlan, ctx: InitContext, closedSync: () => void): void {
  const { sys } = ctx;
  closeOtherFds(sys, ctx);
  sys.prctl(PR_SET_PDEATHSIG, SIGNALS.SIGKILL!);
  // Our memory must not be readable through /proc/<pid>/mem or exe from inside the container.
  sys.prctl(PR_SET_DUMPABLE, 0);
  if (plan.process.terminal) sys.setsid();

  trace("init: start");
  let inCgroup = false;
  const awaitCgroup = () => {
    if (inCgroup) return;
    if (ctx.cgroup === "parent") {
      const msg = readSync(sys, ctx.syncFd);
      if (msg?.t !== "joined") {
        throw new Error("the runtime did not put the container into its cgroup");
      }
    } else {
      ctx.cgroup();
    }
    inCgroup = true;
    trace("init: in cgroup");
    // A cgroup namespace is rooted at the cgroup the process is in when it is made.
    if (plan.newCgroupNs) sys.unshare(CLONE_NEWCGROUP);
  };
  // Join existing namespaces (mount last: paths to the others were opened before).
  const order = ["time", "ipc", "uts", "network", "cgroup", "mount"];
  const joins = plan.join.map((j, i) => ({ ...j, fd: ctx.joinFds[i]! }))
    .sort((a, b) => order.indexOf(a.type) - order.indexOf(b.type));
  for (const j of joins) {
    try {
      sys.setns(j.fd, j.flag);
    } catch (err) {
      if (!(err instanceof SyscallError)) throw err;
      throw new SyscallError("setns", err.errno, `${j.path} (${j.type} namespace)`, { cause: err });
    }
    sys.close(j.fd);
  }
  const early = plan.unshareFlags & ~CLONE_NEWCGROUP;
  if (early) sys.unshare(early);
  if (early & CLONE_NEWNET) loopbackUp(sys);
  if (plan.newTime) enterNewTimeNamespace(sys, plan);
  trace("init: namespaces");

  // With a cgroup namespace, a cgroup mount needs no host path: it can wait until after pivot_root,
  // so that the init's wait for its cgroup (an RCU grace period in the kernel) comes as late as
  // possible. Not when another mount or path lies beneath it, nor without the container's own
  // /proc, through which mounts are made onto the fds of their targets.
  const deferred = plan.newMount && plan.newCgroupNs && ctx.cgroup === "parent" &&
      plan.mounts.some((m) => m.type === "proc" && m.destination.replace(/\/+$/, "") === "/proc")
    ? plan.mounts.filter((m) => m.type === "cgroup" && !nestedUnder(plan, m))
    : [];
  const oldUmask = sys.umask(0);
  if (plan.newMount) {
    prepareRoot(sys, plan);
    const remountReadonly: string[] = [];
    const root = openRoot(sys, plan.rootfs);
    try {
      for (const m of plan.mounts) {
        if (deferred.includes(m)) continue;
        if (m.type === "cgroup") awaitCgroup();
        mountOne(sys, root, plan, ctx, m, remountReadonly);
      }
      trace("init: mounted");
      if (plan.setupDev) setupDev(sys, root, plan);
    } finally {
      closeRoot(root);
    }
    trace("init: dev");
    // Hooks and anything they start belong in the container's cgroup.
    if (ctx.parentHooks || plan.hooks.createContainer.length) awaitCgroup();
    if (ctx.parentHooks) {
      sendSync(sys, ctx.syncFd, { t: "hooks" });
      const reply = readSync(sys, ctx.syncFd);
      if (reply?.t !== "resume") {
        throw new Error("the runtime did not resume the container after its hooks");
      }
    }
    sys.chdir(plan.rootfs);
    for (const hook of plan.hooks.createContainer) {
      runHookSync(sys, "createContainer", hook, hookState(plan, sys, "creating"));
    }
    pivotRoot(sys, plan.rootfs);
    // Propagation for the new "/" itself: pivot_root needs it private or slave until now.
    if (plan.rootPropagation & MS_SHARED) sys.mount(null, "/", null, plan.rootPropagation, null);
    trace("init: pivoted");
    // A missing cwd is made, as runc does, before the root may turn read-only; "/" is the
    // container's root by now.
    if (fileType(sys, plan.process.cwd) === undefined) {
      const root = openRoot(sys, "/");
      try {
        sys.close(mkdirAllInRoot(root, plan.process.cwd));
      } finally {
        closeRoot(root);
      }
    }
    if (plan.process.terminal) setupConsole(sys, plan, ctx);
    for (const dest of remountReadonly) remountRo(sys, dest, 0);
    if (plan.readonlyRoot) remountRo(sys, "/", 0);
  } else {
    awaitCgroup();
    if (plan.process.terminal) setupConsole(sys, plan, ctx);
    sys.chdir("/");
  }
  sys.umask(oldUmask);

  if (plan.hostname !== undefined) sys.sethostname(plan.hostname);
  if (plan.domainname !== undefined) sys.setdomainname(plan.domainname);
  for (const [key, value] of plan.sysctl) {
    sys.writeFile(`/proc/sys/${key.replaceAll(".", "/")}`, value);
  }
  for (const path of plan.readonlyPaths) readonlyPath(sys, path);
  for (const path of plan.maskedPaths) maskPath(sys, path);
  awaitCgroup();
  if (deferred.length) {
    const old = sys.umask(0);
    const root = openRoot(sys, "/");
    try {
      for (const m of deferred) mountCgroups(sys, root, plan, ctx, m);
    } finally {
      closeRoot(root);
    }
    sys.umask(old);
  }

  const { executable, env } = prepareProcess(sys, plan.process, {
    ...(ctx.seccomp ? { seccomp: ctx.seccomp } : {}),
    warn: (m) => warn(ctx, m),
  });

  trace("init: ready");
  // Tell the parent we are created: it records the state while we wait for `start`.
  sys.prctl(PR_SET_PDEATHSIG, 0);
  sys.close(ctx.syncFd);
  closedSync();

  // Wait for `start`. The fd is close-on-exec: `start` sees EPIPE once we have exec'd.
  if (sys.read(ctx.fifoFd, new Uint8Array(1)) !== 1) {
    throw new Error("the exec fifo was closed before start");
  }

  for (const hook of plan.hooks.startContainer) {
    runHookSync(sys, "startContainer", hook, hookState(plan, sys, "created"));
  }
  sys.resetSignals(ctx.ignoredSignals);
  sys.closeRange(3 + ctx.preserveFds, 0xffffffff);
  sys.execve(executable, plan.process.args, env);
}

/** The process settings prepareProcess applies (InitPlan["process"]). */
export type ProcessPlan = InitPlan["process"];

/**
 * The last steps before execve, shared by a container's init and `exec`:
 * oom score, rlimits, no_new_privs, seccomp (before dropping capabilities
 * without NNP, as late as possible with it), bounding set, groups and ids,
 * capabilities, cwd, umask, HOME and the PATH lookup of the program.
 */
export function prepareProcess(
  sys: Syscall,
  p: ProcessPlan,
  options: { seccomp?: { load(): number | undefined }; warn: (message: string) => void },
): { executable: string; env: string[] } {
  if (p.oomScoreAdj !== undefined) {
    try {
      sys.writeFile("/proc/self/oom_score_adj", String(p.oomScoreAdj));
    } catch (err) {
      // Lowering the score needs CAP_SYS_RESOURCE in the initial namespace; some machines refuse it even to root.
      if (
        !(err instanceof SyscallError) || (err.errnoName !== "EACCES" && err.errnoName !== "EPERM")
      ) throw err;
      options.warn(
        `cannot set oomScoreAdj to ${p.oomScoreAdj}: ${err.errnoName}; keeping the inherited score`,
      );
    }
  }
  for (const r of p.rlimits) sys.setrlimit(r.resource, r.soft, r.hard);
  if (p.noNewPrivileges) sys.prctl(PR_SET_NO_NEW_PRIVS, 1);
  // Without NNP, installing a filter needs CAP_SYS_ADMIN: do it before capabilities are dropped.
  if (options.seccomp && !p.noNewPrivileges) options.seccomp.load();

  const cwdFirst = tryChdir(sys, p.cwd);
  if (p.capabilities) {
    dropBoundingSet(sys, p.capabilities.bounding);
    sys.prctl(PR_SET_KEEPCAPS, 1);
  }
  sys.setgroups(p.additionalGids);
  sys.setresgid(p.gid, p.gid, p.gid);
  sys.setresuid(p.uid, p.uid, p.uid);
  if (p.capabilities) {
    sys.prctl(PR_SET_KEEPCAPS, 0);
    applyCapabilities(sys, p.capabilities);
  }
  if (!cwdFirst) sys.chdir(p.cwd);
  sys.umask(p.umask ?? 0o022);

  const env = withHome(sys, p.env, p.uid);
  const executable = lookPath(sys, p.args[0]!, env);
  if (options.seccomp && p.noNewPrivileges) options.seccomp.load();
  return { executable, env };
}

/** A new network namespace starts with `lo` down; bring it up, as container engines do. */
function loopbackUp(sys: Syscall): void {
  const fd = sys.socket(AF_INET, SOCK_DGRAM);
  try {
    const ifreq = new Uint8Array(40);
    ifreq.set(encoder.encode("lo"));
    sys.ioctl(fd, SIOCGIFFLAGS, ifreq);
    const view = new DataView(ifreq.buffer);
    view.setUint16(16, view.getUint16(16, true) | IFF_UP, true);
    sys.ioctl(fd, SIOCSIFFLAGS, ifreq);
  } finally {
    sys.close(fd);
  }
}

/** unshare(CLONE_NEWTIME) only affects children: set the offsets, then join the new namespace ourselves. */
function enterNewTimeNamespace(sys: Syscall, plan: InitPlan): void {
  sys.unshare(CLONE_NEWTIME);
  const offsets = Object.entries(plan.timeOffsets ?? {}).map(([clock, [s, ns]]) =>
    `${clock} ${s} ${ns}`
  );
  if (offsets.length) sys.writeFile("/proc/self/timens_offsets", offsets.join("\n") + "\n");
  const fd = sys.open("/proc/self/ns/time_for_children", O_RDONLY | O_CLOEXEC);
  try {
    sys.setns(fd, CLONE_NEWTIME);
  } finally {
    sys.close(fd);
  }
}

/**
 * Closes every fd the init does not need, right after fork: nothing of the
 * runtime's (Deno's caches, event loop, sockets) may follow it into the
 * container's namespaces. Kept: stdio, the fds passed on (--preserve-fds),
 * and the init's own.
 */
export function closeOtherFds(
  sys: Syscall,
  ctx: Pick<InitContext, "syncFd" | "joinFds" | "consoleSocketFd" | "preserveFds" | "stdio"> & {
    fifoFd?: number;
  },
): void {
  if (ctx.stdio) ctx.stdio.forEach((fd, i) => sys.dup2(fd, i));
  const keep = new Set([ctx.syncFd, ...ctx.joinFds]);
  if (ctx.fifoFd !== undefined) keep.add(ctx.fifoFd);
  if (ctx.consoleSocketFd !== undefined) keep.add(ctx.consoleSocketFd);
  const first = 3 + ctx.preserveFds;
  // close_range around the fds we keep: a few syscalls, where listing /proc/self/fd in a freshly
  // forked child cost more than a millisecond (Deno's readDir code compiled again in the child).
  try {
    let low = first;
    for (const fd of [...keep].filter((fd) => fd >= first).sort((a, b) => a - b)) {
      if (fd > low) sys.closeRange(low, fd - 1);
      low = fd + 1;
    }
    sys.closeRange(low, 0xffffffff);
    return;
  } catch (err) {
    // ENOSYS: a kernel older than 5.9; close them one by one
    if (!(err instanceof SyscallError) || err.errnoName !== "ENOSYS") throw err;
  }
  for (const fd of sys.openFds()) {
    if (fd < first || keep.has(fd)) continue;
    try {
      sys.close(fd);
    } catch (err) {
      // EBADF: the fd that listed /proc/self/fd, closed already
      if (!(err instanceof SyscallError) || err.errnoName !== "EBADF") throw err;
    }
  }
}

function hookState(plan: InitPlan, sys: Syscall, status: "creating" | "created"): State {
  return { ociVersion: OCI_VERSION, id: plan.id, status, pid: sys.getpid(), bundle: plan.bundle };
}

function tryChdir(sys: Syscall, path: string): boolean {
  try {
    sys.chdir(path);
    return true;
  } catch {
    return false;
  }
}

/** Makes "/" slave (or what rootfsPropagation asks), the rootfs's parent mount private, and binds the rootfs onto itself. */
function prepareRoot(sys: Syscall, plan: InitPlan): void {
  sys.mount(null, "/", null, plan.rootPropagation, null);
  makeParentMountPrivate(sys, plan.rootfs);
  sys.mount(plan.rootfs, plan.rootfs, "bind", MS_BIND | MS_REC, null);
}

/** pivot_root needs the new root's parent mount not to be shared. */
function makeParentMountPrivate(sys: Syscall, rootfs: string): void {
  const info = decoder.decode(sys.readFile("/proc/self/mountinfo"));
  let best: { point: string; shared: boolean } | undefined;
  for (const line of info.split("\n")) {
    const fields = line.split(" ");
    const point = fields[4];
    if (!point) continue;
    const decoded = point.replace(/\\(\d{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)));
    const prefix = decoded === "/" ? "/" : decoded + "/";
    if (rootfs !== decoded && !rootfs.startsWith(prefix)) continue;
    if (!best || decoded.length >= best.point.length) {
      const sep = fields.indexOf("-");
      best = { point: decoded, shared: fields.slice(6, sep).some((f) => f.startsWith("shared:")) };
    }
  }
  if (best?.shared) sys.mount(null, best.point, null, MS_PRIVATE, null);
}

/** Where a mount(2) acts: an fd (reached through its `/proc/self/fd` path) or, after pivot_root, a path. */
type Target = number | string;

function targetPath(target: Target): string {
  return typeof target === "number" ? fdPath(target) : target;
}

/**
 * mount(2) onto `target`. Through an fd's `/proc/self/fd` path the kernel does
 * not walk the destination again, so nothing swapped in since it was looked up
 * is followed. Errors name `destination`, the path in the container.
 */
function mountAt(
  sys: Syscall,
  source: string | null,
  target: Target,
  destination: string,
  fstype: string | null,
  flags: number,
  data: string | null,
): void {
  try {
    sys.mount(source, targetPath(target), fstype, flags, data);
  } catch (err) {
    const what = `${JSON.stringify(source ?? fstype ?? "none")} on ${JSON.stringify(destination)}`;
    throw err instanceof SyscallError
      ? new SyscallError("mount", err.errno, what, { cause: err })
      : err;
  }
}

/** The MS_* flags a bind remount of the mount at `target` must keep. */
function mountFlagsOf(sys: Syscall, target: Target, destination: string): number {
  try {
    return statfsToMountFlags(sys.statfs(targetPath(target)).flags);
  } catch (err) {
    throw named(err, "statfs", destination);
  }
}

/** Remounts the mount at `target` (its root) read-only, keeping its other flags. */
function remountRo(
  sys: Syscall,
  target: Target,
  extra: number,
  destination = String(target),
): void {
  const flags = MS_BIND | MS_REMOUNT | MS_RDONLY | mountFlagsOf(sys, target, destination) | extra;
  mountAt(sys, null, target, destination, null, flags, null);
}

/**
 * Makes the mount point inside the root and returns an O_PATH fd of it: a
 * directory, or an empty file when a bind source is not a directory. proc
 * and sysfs go exactly where the spec says (as runc, CVE-2019-19921): a
 * symlink there is refused, where following it would put them elsewhere.
 */
function createMountpoint(sys: Syscall, root: Root, m: PlannedMount): number {
  if (m.type === "proc" || m.type === "sysfs") {
    const fd = mkdirAllInRoot(root, m.destination, { follow: false });
    const type = sys.fstat(fd).mode & S_IFMT;
    if (type !== S_IFDIR) {
      sys.close(fd);
      throw new Error(
        `Cannot mount ${m.type} on ${JSON.stringify(m.destination)}: it is ${
          type === S_IFLNK ? "a symlink" : "not a directory"
        } in the container's root; filesystem "${m.type}" must be mounted on ordinary directory`,
      );
    }
    return fd;
  }
  const sourceType = m.bind ? fileType(sys, m.source) : S_IFDIR;
  if (sourceType === undefined) {
    throw new SyscallError(
      "mount",
      ERRNO.ENOENT!,
      `source ${JSON.stringify(m.source)} of ${JSON.stringify(m.destination)}`,
    );
  }
  return sourceType === S_IFDIR
    ? mkdirAllInRoot(root, m.destination)
    : createFileInRoot(root, m.destination);
}

/**
 * Refuses mount `m` where `target`, its mount point as the lookup reached it
 * (symlinks inside the root followed), is the container's /proc or lies
 * inside it, as runc's checkProcMount does (see proc_mounts.ts). Closes
 * `target` when it throws.
 */
function checkProcMount(
  sys: Syscall,
  root: Root,
  ctx: InitContext,
  m: PlannedMount,
  target: number,
): void {
  try {
    let resolved: string;
    try {
      resolved = pathInRoot(root, target);
    } catch (err) {
      throw named(err, undefined, m.destination);
    }
    const refused = procMountRefusal({
      destination: m.destination,
      resolved,
      type: m.type,
      bind: m.bind,
      sourceIsProcfs: () => sourceIsProcfs(sys, ctx, m),
    });
    if (refused !== undefined) throw new Error(refused);
  } catch (err) {
    sys.close(target);
    throw err;
  }
}

/** Whether bind mount `m`'s source is on a procfs; one that is not a procfs's root is let through with a warning, as runc does. */
function sourceIsProcfs(sys: Syscall, ctx: InitContext, m: PlannedMount): boolean {
  if (sys.statfs(m.source).type !== PROC_SUPER_MAGIC) return false;
  if (sys.stat(m.source, true).ino !== PROC_ROOT_INO) {
    warn(
      ctx,
      `the bind mount on ${JSON.stringify(m.destination)} has a procfs source, ${
        JSON.stringify(m.source)
      }, that is not the root of a procfs`,
    );
  }
  return true;
}

function mountOne(
  sys: Syscall,
  root: Root,
  plan: InitPlan,
  ctx: InitContext,
  m: PlannedMount,
  remountReadonly: string[],
): void {
  if (m.type === "cgroup") {
    mountCgroups(sys, root, plan, ctx, m);
    return;
  }
  const target = createMountpoint(sys, root, m);
  checkProcMount(sys, root, ctx, m, target);
  // tmpcopyup: the directory the tmpfs is about to cover, still readable through this fd.
  let covered: number | undefined;
  try {
    if (m.type === "tmpfs" && m.extensions.includes("tmpcopyup")) {
      try {
        covered = sys.openat(target, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      } catch (err) {
        throw named(err, "open", m.destination);
      }
    }
    if (m.bind) {
      mountAt(sys, m.source, target, m.destination, "bind", m.flags & (MS_BIND | MS_REC), null);
    } else if (m.type === "tmpfs") {
      // A read-only tmpfs is mounted writable, then remounted read-only once filled (for /dev, after the devices).
      mountAt(
        sys,
        m.source || "tmpfs",
        target,
        m.destination,
        "tmpfs",
        m.flags & ~MS_RDONLY,
        m.data || null,
      );
    } else {
      mountAt(sys, m.source || m.type, target, m.destination, m.type, m.flags, m.data || null);
    }
  } catch (err) {
    if (covered !== undefined) sys.close(covered);
    throw err;
  } finally {
    sys.close(target);
  }
  const bindFlags = m.bind ? m.flags & ~(MS_BIND | MS_REC) : 0;
  const remountBind = m.bind && (bindFlags !== 0 || m.cleared !== 0);
  const readonlyTmpfs = !m.bind && m.type === "tmpfs" && (m.flags & MS_RDONLY) !== 0;
  if (!remountBind && !readonlyTmpfs && covered === undefined && m.propagation.length === 0) return;
  // What follows acts on the new mount: the destination, looked up again, now leads to it.
  let top: number;
  try {
    top = openInRoot(root, m.destination);
  } catch (err) {
    if (covered !== undefined) sys.close(covered);
    throw err;
  }
  try {
    if (covered !== undefined) copyUp(sys, covered, top, m);
    if (remountBind) {
      const keep = mountFlagsOf(sys, top, m.destination) & ~m.cleared;
      mountAt(sys, null, top, m.destination, null, MS_BIND | MS_REMOUNT | keep | bindFlags, null);
    } else if (readonlyTmpfs) {
      if (m.destination === "/dev") remountReadonly.push("/dev");
      else remountRo(sys, top, 0, m.destination);
    }
    for (const flag of m.propagation) mountAt(sys, null, top, m.destination, null, flag, null);
  } finally {
    sys.close(top);
  }
}

/**
 * tmpcopyup: copies what the tmpfs now covers (`covered`, a directory fd
 * opened before the mount) into it (`top`, an O_PATH fd of the new mount's
 * root), keeping owners, modes, times, symlinks and special files; the
 * tmpfs's root takes the covered directory's owner and mode unless the
 * options set them. Closes `covered`.
 */
function copyUp(sys: Syscall, covered: number, top: number, m: PlannedMount): void {
  let dst: number | undefined;
  try {
    dst = sys.openat(top, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    copyTree(sys, covered, dst, m.destination.replace(/\/+$/, ""));
    const st = sys.fstat(covered);
    const options = m.data.split(",").map((o) => o.split("=")[0]);
    if (!options.includes("uid") && !options.includes("gid")) {
      sys.fchownat(dst, "", st.uid, st.gid, AT_EMPTY_PATH);
    }
    if (!options.includes("mode")) sys.fchmod(dst, st.mode & 0o7777);
  } catch (err) {
    const what = `Cannot copy ${JSON.stringify(m.destination)} into its tmpfs (tmpcopyup)`;
    throw new Error(`${what}: ${err instanceof Error ? err.message : err}`, { cause: err });
  } finally {
    sys.close(covered);
    if (dst !== undefined) sys.close(dst);
  }
}

/** Copies the entries of directory `from` into directory `to` (both open O_RDONLY), recursively; `where` names `from` in errors. */
function copyTree(sys: Syscall, from: number, to: number, where: string): void {
  for (const name of sys.readdir(from)) {
    const path = `${where}/${name}`;
    let dirs: [number, number?] | undefined;
    let st: FileStat;
    try {
      st = sys.stat(name, false, from);
      const type = st.mode & S_IFMT;
      if (type === S_IFDIR) {
        sys.mkdirat(to, name, 0o700);
        dirs = [sys.openat(from, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)];
        dirs[1] = sys.openat(to, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      } else if (type === S_IFREG) copyFile(sys, from, to, name);
      else if (type === S_IFLNK) sys.symlinkat(sys.readlinkat(from, name), to, name);
      else sys.mknodat(to, name, st.mode, st.rdevMajor, st.rdevMinor); // devices, fifos, sockets
    } catch (err) {
      if (dirs) dirs.forEach((fd) => fd !== undefined && sys.close(fd));
      throw named(err, undefined, path);
    }
    if (dirs) {
      try {
        copyTree(sys, dirs[0], dirs[1]!, path);
      } finally {
        sys.close(dirs[0]);
        sys.close(dirs[1]!);
      }
    }
    try {
      // Owner first: chown clears the set-id bits that chmod then sets.
      sys.fchownat(to, name, st.uid, st.gid, AT_SYMLINK_NOFOLLOW);
      if ((st.mode & S_IFMT) !== S_IFLNK) sys.fchmodat(to, name, st.mode & 0o7777);
      sys.utimensat(to, name, st.atimeNs, st.mtimeNs, AT_SYMLINK_NOFOLLOW);
    } catch (err) {
      throw named(err, undefined, path);
    }
  }
}

/** Copies regular file `name` of directory `from` into directory `to`. */
function copyFile(sys: Syscall, from: number, to: number, name: string): void {
  // O_NONBLOCK: a fifo swapped in since the stat must not hang the init; the fstat below refuses it.
  const src = sys.openat(from, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  try {
    if ((sys.fstat(src).mode & S_IFMT) !== S_IFREG) {
      throw new SyscallError(
        "open",
        ERRNO.EINVAL!,
        `${JSON.stringify(name)}: no longer a regular file`,
      );
    }
    const dst = sys.openat(to, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600);
    try {
      const buf = new Uint8Array(65536);
      for (let n = sys.read(src, buf); n > 0; n = sys.read(src, buf)) {
        for (let off = 0; off < n;) off += sys.write(dst, buf.subarray(off, n));
      }
    } finally {
      sys.close(dst);
    }
  } finally {
    sys.close(src);
  }
}

/** A `cgroup` mount: the container's own cgroups (through a cgroup namespace, or bind mounts of its directories). */
function mountCgroups(
  sys: Syscall,
  root: Root,
  plan: InitPlan,
  ctx: InitContext,
  m: PlannedMount,
): void {
  const flags = (m.flags | MS_NOSUID | MS_NODEV | MS_NOEXEC) & ~MS_BIND;
  const v2 = ctx.cgroupMounts.find((c) => c.version === 2 && c.name === "");
  const target = mkdirAllInRoot(root, m.destination);
  checkProcMount(sys, root, ctx, m, target);
  try {
    if (!v2) mountAt(sys, "tmpfs", target, m.destination, "tmpfs", flags & ~MS_RDONLY, "mode=755");
    else if (plan.newCgroupNs) {
      mountAt(sys, "cgroup2", target, m.destination, "cgroup2", flags, null);
    } else mountAt(sys, v2.hostPath, target, m.destination, "bind", MS_BIND | MS_REC, null);
  } finally {
    sys.close(target);
  }
  const top = openInRoot(root, m.destination);
  try {
    if (!v2) {
      for (const c of ctx.cgroupMounts) {
        const where = `${m.destination.replace(/\/+$/, "")}/${c.name}`;
        const sub = subdirAt(sys, top, c.name, where, true);
        try {
          if (plan.newCgroupNs) mountAt(sys, "cgroup", sub, where, "cgroup", flags, c.options);
          else mountAt(sys, c.hostPath, sub, where, "bind", MS_BIND | MS_REC, null);
        } finally {
          sys.close(sub);
        }
        if (!plan.newCgroupNs && flags & MS_RDONLY) {
          const bound = subdirAt(sys, top, c.name, where, false);
          try {
            remountRo(sys, bound, 0, where);
          } finally {
            sys.close(bound);
          }
        }
      }
      if (flags & MS_RDONLY) remountRo(sys, top, 0, m.destination);
    }
    for (const flag of m.propagation) mountAt(sys, null, top, m.destination, null, flag, null);
  } finally {
    sys.close(top);
  }
}

/** An O_PATH fd of directory `name` in `dirfd` (made first when `make`), never through a symlink. */
function subdirAt(sys: Syscall, dirfd: number, name: string, where: string, make: boolean): number {
  try {
    if (make) sys.mkdirat(dirfd, name, 0o755);
    return sys.openat(dirfd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  } catch (err) {
    throw named(err, undefined, where);
  }
}

/** True when another mount, masked or read-only path lies beneath mount `m`'s destination. */
function nestedUnder(plan: InitPlan, m: PlannedMount): boolean {
  const prefix = m.destination.replace(/\/+$/, "") + "/";
  return plan.mounts.some((o) => o !== m && o.destination.startsWith(prefix)) ||
    plan.maskedPaths.some((p) => p.startsWith(prefix)) ||
    plan.readonlyPaths.some((p) => p.startsWith(prefix));
}

/** Device nodes, /dev/ptmx and the /dev symlinks, when /dev is not the host's. */
function setupDev(sys: Syscall, root: Root, plan: InitPlan): void {
  const nodes = [
    ...DEFAULT_DEVICES.map((d) => ({ ...d, kind: S_IFCHR, uid: 0, gid: 0 })),
    ...plan.devices,
  ];
  for (const d of nodes) {
    const { dir, name } = parentInRoot(root, d.path);
    try {
      if (existsAt(sys, dir, name)) {
        if (!plan.devices.includes(d as never)) continue;
        sys.unlinkat(dir, name, 0);
      }
      makeDevice(sys, dir, name, d);
    } catch (err) {
      throw named(err, undefined, d.path);
    } finally {
      sys.close(dir);
    }
  }
  const links: [string, string][] = [
    ["pts/ptmx", "ptmx"],
    ["/proc/self/fd", "fd"],
    ["/proc/self/fd/0", "stdin"],
    ["/proc/self/fd/1", "stdout"],
    ["/proc/self/fd/2", "stderr"],
  ];
  if (existsNoFollow(sys, "/proc/kcore")) links.push(["/proc/kcore", "core"]);
  const dev = openInRoot(root, "/dev", O_PATH | O_DIRECTORY);
  try {
    for (const [target, name] of links) {
      try {
        // ptmx replaces what is there (a device node of the rootfs); the other links are kept.
        if (existsAt(sys, dev, name)) {
          if (name !== "ptmx") continue;
          sys.unlinkat(dev, name, 0);
        }
        sys.symlinkat(target, dev, name);
      } catch (err) {
        throw named(err, undefined, `/dev/${name}`);
      }
    }
  } finally {
    sys.close(dev);
  }
}

/** mknod of device `d` as `name` in `dir`; where mknod is refused (a nodev filesystem), a bind mount of the host's node. */
function makeDevice(sys: Syscall, dir: number, name: string, d: PlannedDevice): void {
  try {
    sys.mknodat(dir, name, d.kind | d.mode, d.major, d.minor);
  } catch (err) {
    if (!(err instanceof SyscallError) || err.errnoName !== "EPERM") throw err;
    sys.close(sys.openat(dir, name, O_CREAT | O_EXCL | O_NOFOLLOW | O_WRONLY | O_CLOEXEC, 0o666));
    const fd = sys.openat(dir, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    try {
      mountAt(sys, d.path, fd, d.path, "bind", MS_BIND, null);
    } finally {
      sys.close(fd);
    }
    return;
  }
  sys.fchownat(dir, name, d.uid, d.gid, AT_SYMLINK_NOFOLLOW);
}

/** runc's pivot_root dance: pivot onto "." and detach the old root, which stays slave so nothing propagates back. */
function pivotRoot(sys: Syscall, rootfs: string): void {
  const oldRoot = sys.open("/", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
  const newRoot = sys.open(rootfs, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
  try {
    sys.fchdir(newRoot);
    sys.pivotRoot(".", ".");
    sys.fchdir(oldRoot);
    sys.mount(null, ".", null, MS_SLAVE | MS_REC, null);
    sys.umount2(".", MNT_DETACH);
    sys.chdir("/");
  } finally {
    sys.close(oldRoot);
    sys.close(newRoot);
  }
}

/** A pty from the container's devpts: master to the console socket, slave as controlling terminal and stdio. */
function setupConsole(sys: Syscall, plan: InitPlan, ctx: InitContext): void {
  attachTerminal(sys, ctx.consoleSocketFd, plan.process.consoleSize, (slavePath) => {
    if (!plan.newMount) return;
    if (!existsNoFollow(sys, "/dev/console")) {
      sys.close(sys.open("/dev/console", O_CREAT | O_WRONLY | O_CLOEXEC, 0o600));
    }
    sys.mount(slavePath, "/dev/console", "bind", MS_BIND, null);
  });
}

/**
 * Opens a pty in the current mount namespace's /dev/ptmx, sends the master to
 * `consoleSocketFd` (SCM_RIGHTS, the slave's path as payload, as runc does)
 * and makes the slave the calling process's controlling terminal and stdio.
 * The caller must be a session leader (setsid) already.
 */
export function attachTerminal(
  sys: Syscall,
  consoleSocketFd: number | undefined,
  size: { rows: number; cols: number } | undefined,
  beforeSend?: (slavePath: string) => void,
): void {
  if (consoleSocketFd === undefined) {
    throw new Error("the process wants a terminal but there is no console socket");
  }
  const { master, slavePath } = sys.openPty("/dev/ptmx");
  if (size) sys.setWinsize(master, size);
  beforeSend?.(slavePath);
  try {
    sys.sendFds(consoleSocketFd, encoder.encode(slavePath), [master]);
  } catch (err) {
    if (!(err instanceof SyscallError) || err.errnoName !== "EPIPE") throw err;
    throw new Error("send the pty master to the console socket: EPIPE (its other end was closed)");
  }
  sys.close(master);
  sys.close(consoleSocketFd);
  const slave = sys.open(slavePath, O_RDWR | O_CLOEXEC);
  sys.ioctl(slave, TIOCSCTTY, 0);
  for (const fd of [0, 1, 2]) sys.dup2(slave, fd);
  sys.close(slave);
}

/**
 * Binds `path` onto itself read-only (after pivot_root). A path that does
 * not exist is skipped, as runc does, a dangling symlink included.
 */
function readonlyPath(sys: Syscall, path: string): void {
  try {
    sys.mount(path, path, null, MS_BIND | MS_REC, null);
  } catch (err) {
    if (
      err instanceof SyscallError && (err.errnoName === "ENOENT" || err.errnoName === "ENOTDIR")
    ) {
      return;
    }
    throw err;
  }
  remountRo(sys, path, MS_REC);
}

function maskPath(sys: Syscall, path: string): void {
  const type = fileType(sys, path);
  if (type === undefined) return;
  if (type === S_IFDIR) sys.mount("tmpfs", path, "tmpfs", MS_RDONLY, null);
  else sys.mount("/dev/null", path, null, MS_BIND, null);
}

/** Adds HOME from the container's /etc/passwd when the spec does not set it (as runc does). */
function withHome(sys: Syscall, env: readonly string[], uid: number): string[] {
  if (env.some((e) => e.startsWith("HOME="))) return [...env];
  let home = "/";
  try {
    for (const line of decoder.decode(sys.readFile("/etc/passwd")).split("\n")) {
      const f = line.split(":");
      if (f.length >= 6 && Number(f[2]) === uid && f[2] !== "") {
        home = f[5] || "/";
        break;
      }
    }
  } catch {
    // no passwd file
  }
  return [...env, `HOME=${home}`];
}

const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

function isExecutable(sys: Syscall, path: string): boolean {
  try {
    const st = sys.stat(path, true);
    return (st.mode & S_IFMT) === S_IFREG && (st.mode & 0o111) !== 0;
  } catch {
    return false;
  }
}

/** Finds the program like execvp would, in the container's PATH. */
function lookPath(sys: Syscall, name: string, env: readonly string[]): string {
  if (name.includes("/")) {
    if (isExecutable(sys, name)) return name;
    throw new SyscallError(
      "exec",
      fileType(sys, name) === undefined ? 2 : 13,
      JSON.stringify(name),
    );
  }
  const path = env.find((e) => e.startsWith("PATH="))?.slice(5) ?? DEFAULT_PATH;
  for (const dir of path.split(":")) {
    const candidate = `${dir || "."}/${name}`;
    if (isExecutable(sys, candidate)) return candidate;
  }
  throw new Error(`exec: ${JSON.stringify(name)}: executable file not found in $PATH`);
}
