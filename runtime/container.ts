/**
 * The operations of `tug runtime`, usable without the CLI: create, start,
 * state, kill, delete, pause, resume, ps, list. Each loads the container's
 * record, refreshes its status from the kernel, checks the lifecycle table,
 * acts, and saves.
 *
 * `create` forks the container's init from this process (see ffi/libc.ts for
 * why that is safe under Deno): no second Deno start-up on the way to a
 * running container.
 *
 * @module
 */

import { exists } from "../util/fs.ts";
import { basename, resolve } from "../util/path.ts";
import {
  CLONE_NEWPID,
  NAMESPACES,
  O_CLOEXEC,
  O_DIRECTORY,
  O_NONBLOCK,
  O_RDONLY,
  O_RDWR,
  O_WRONLY,
  SIGNALS,
  SOCK_SEQPACKET,
  WNOHANG,
} from "../ffi/constants.ts";
import { libcSyscall } from "../ffi/libc.ts";
import { exitCodeOf, signalOf, type Syscall, SyscallError } from "../ffi/syscall.ts";
import { signalName } from "./signals.ts";
import {
  errorMessage,
  FailedPrecondition,
  Internal,
  InvalidArgument,
  NotFound,
} from "../errors.ts";
import {
  type CgroupLayout,
  type CgroupManager,
  cgroupManager,
  detectCgroups,
} from "./cgroups/mod.ts";
import { armCgroupAttach } from "./cgroups/arm.ts";
import { runHooks } from "./hooks.ts";
import { type HeldLock, lockExclusive } from "./lock.ts";
import {
  type CgroupMountInfo,
  initContainer,
  type InitContext,
  readSync,
  sendSync,
} from "./init.ts";
import { type InitPlan, loadSpec, planContainer } from "./plan.ts";
import type { Hook, Spec, State, Status } from "./spec.ts";
import { trace } from "../trace.ts";
import {
  checkTransition,
  containerDir,
  type ContainerLock,
  type ContainerRecord,
  type CreatingCgroup,
  creatingPath,
  currentStatus,
  fifoPath,
  initAlive,
  listIds,
  load,
  loadCreating,
  lockContainer,
  ociState,
  processStat,
  remove,
  reserve,
  save,
  withContainerLock,
} from "./state.ts";

/** Options every operation takes. */
export interface RuntimeOptions {
  /** State directory (runc's --root). */
  root: string;
  /** For create: a write from {@link armCgroupAttach} started early (default: one started then). */
  cgroupArmed?: Promise<void>;
  /** The syscall layer (tests pass a fake). */
  sys?: Syscall;
  /** Where warnings go (default: stderr). */
  warn?: (message: string) => void;
  /**
   * Runs the runtime-namespace hooks (prestart, createRuntime, poststart,
   * poststop). Default: Deno.Command. A process that reaps its own children
   * (the shim) passes a runner that forks and waits through its reaper.
   */
  runHooks?: (kind: string, hooks: readonly Hook[], state: State) => Promise<void>;
}

/** Options of {@link createContainer}. */
export interface CreateOptions extends RuntimeOptions {
  /** Bundle directory (default: the current directory). */
  bundle?: string;
  /** The bundle's config.json as its writer already holds it (default: read from the bundle). */
  spec?: Spec;
  pidFile?: string;
  /** Unix socket that receives the pty master when process.terminal is true. */
  consoleSocket?: string;
  /** An already connected console socket (createContainer takes ownership and closes it). */
  consoleSocketFd?: number;
  /** Number of fds above stdio to pass to the container. */
  preserveFds?: number;
  /** Fds to become the container process's stdin, stdout and stderr (default: the caller's own). */
  stdio?: [number, number, number];
}

/** What {@link createContainer} made. */
export interface Created {
  record: ContainerRecord;
  /** Host pid of the container's init; a child of the calling process. */
  pid: number;
}

function defaultWarn(message: string): void {
  console.error(`tug runtime: warning: ${message}`);
}

/** Reopens the cgroup a container was created in, from the directories recorded at create time. */
export function cgroupFor(
  record: ContainerRecord,
  sys: Syscall,
  warn: (m: string) => void = defaultWarn,
): CgroupManager {
  return cgroupManager({
    id: record.id,
    paths: record.cgroupPaths,
    sys,
    warn,
    ...(record.cgroupsPath ? { cgroupsPath: record.cgroupsPath } : {}),
  });
}

/** The cgroup hierarchies a `cgroup` mount inside the container shows: one per mounted hierarchy the container joined. */
function cgroupMountInfo(layout: CgroupLayout, paths: Record<string, string>): CgroupMountInfo[] {
  if (layout.mode === "v2") {
    const unified = paths.unified;
    return unified ? [{ name: "", options: "", hostPath: unified, version: 2 }] : [];
  }
  const byMount = new Map<string, CgroupMountInfo>();
  for (const [key, mount] of Object.entries(layout.v1)) {
    const hostPath = paths[key];
    if (!hostPath) continue;
    const existing = byMount.get(mount.mountpoint);
    if (existing) {
      if (!existing.options.split(",").includes(key)) existing.options += `,${key}`;
      continue;
    }
    byMount.set(mount.mountpoint, {
      name: basename(mount.mountpoint),
      options: key,
      hostPath,
      version: 1,
    });
  }
  return [...byMount.values()];
}

/** True when the container's cgroup directory exists already (in its first hierarchy). */
function cgroupExists(cgroup: CgroupManager): boolean {
  const first = Object.values(cgroup.paths())[0];
  if (first === undefined) return false;
  try {
    Deno.statSync(first);
    return true;
  } catch {
    return false;
  }
}

/** Refuses a cgroup that holds `squatters` already: another container's processes. */
function refuseSquatters(id: string, cgroup: CgroupManager, squatters: number): void {
  if (squatters === 0) return;
  throw new FailedPrecondition(
    `Cannot create container ${JSON.stringify(id)}: its cgroup ${
      Object.values(cgroup.paths())[0]
    } already holds ${squatters} process(es); another container uses that cgroups path`,
  );
}

/**
 * Locks the container's cgroup directory (in its first hierarchy) with
 * flock(2), made again when a failed create removed it meanwhile: a create
 * holds it from its check that the cgroup is empty until its init is in it,
 * so that two containers never share one (runc only warns). Returns the lock
 * and the number of processes in that directory: a create that joined while
 * we waited put its init there.
 */
async function lockCgroup(
  sys: Syscall,
  cgroup: CgroupManager,
): Promise<{ lock: HeldLock; squatters: number }> {
  const dir = Object.values(cgroup.paths())[0]!;
  const lock = await lockExclusive(sys, dir, () => {
    try {
      return sys.open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    } catch (err) {
      if (!(err instanceof SyscallError) || err.errnoName !== "ENOENT") throw err;
    }
    cgroup.create();
    return sys.open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  });
  try {
    const procs = new TextDecoder().decode(sys.readFile(`${dir}/cgroup.procs`));
    return { lock, squatters: procs.split("\n").filter(Boolean).length };
  } catch (err) {
    lock.release();
    throw err;
  }
}

/** Signals this process ignores (SigIgn in /proc/self/status); a forked init inherits them. */
function ignoredSignals(): number[] {
  try {
    const m = /^SigIgn:\s*([0-9a-f]+)$/m.exec(Deno.readTextFileSync("/proc/self/status"));
    const mask = BigInt(`0x${m?.[1] ?? "0"}`);
    const out: number[] = [];
    for (let sig = 1; sig <= 64; sig++) if ((mask >> BigInt(sig - 1)) & 1n) out.push(sig);
    return out;
  } catch {
    return Array.from({ length: 64 }, (_, i) => i + 1);
  }
}

/** Writes `pid` to the file at `path` (runc's --pid-file), atomically. */
export async function writePidFile(path: string, pid: number): Promise<void> {
  const tmp = `${path}.tmp-${Deno.pid}`;
  try {
    await Deno.writeTextFile(tmp, String(pid));
    await Deno.rename(tmp, path);
  } catch (err) {
    await Deno.remove(tmp).catch(() => {});
    throw new InvalidArgument(
      `Write pid file ${path}: ${
        err instanceof Deno.errors.NotFound ? "its directory does not exist" : errorMessage(err)
      }`,
      { cause: err },
    );
  }
}

/**
 * Throws InvalidArgument unless `fd` (opened from a linux.namespaces path) is
 * a namespace of `type`: setns(2) would only say EINVAL, from the init.
 */
function checkNamespaceFd(fd: number, type: string, path: string): void {
  let link: string;
  try {
    link = Deno.readLinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return; // no such fd here (a fake syscall layer): setns will tell
  }
  const file = NAMESPACES[type]?.file;
  const kind = /^(\w+):\[\d+\]$/.exec(link)?.[1];
  if (kind === file) return;
  const actual = Object.entries(NAMESPACES).find(([, ns]) => ns.file === kind)?.[0];
  throw new InvalidArgument(
    `Invalid linux.namespaces path ${path}: not a ${type} namespace (${
      actual ? `it is a ${actual} namespace` : "not a namespace file"
    })`,
  );
}

/**
 * Creates a container from an OCI bundle: validates the config, reserves the
 * id, sets up the cgroup, compiles seccomp, forks the init and waits until it
 * has set everything up and blocks on the exec fifo. On any failure nothing
 * is left behind (init killed, cgroup and state removed).
 */
export async function createContainer(id: string, options: CreateOptions): Promise<Created> {
  const sys = options.sys ?? libcSyscall();
  const warn = options.warn ?? defaultWarn;
  const bundle = resolve(options.bundle ?? Deno.cwd());
  trace("create: start");
  const spec = options.spec ?? loadSpec(bundle);
  const plan = planContainer(spec, { id, bundle });
  trace("create: planned");
  plan.warnings.forEach(warn);
  const hasConsole = options.consoleSocket !== undefined || options.consoleSocketFd !== undefined;
  if (plan.process.terminal && !hasConsole) {
    if (options.consoleSocketFd !== undefined) sys.close(options.consoleSocketFd);
    throw new InvalidArgument(
      "Cannot allocate a terminal without --console-socket: the pty master needs somewhere to go",
    );
  }
  if (!plan.process.terminal && hasConsole) {
    if (options.consoleSocketFd !== undefined) sys.close(options.consoleSocketFd);
    throw new InvalidArgument(
      "Cannot use --console-socket: process.terminal is false in the bundle's config",
    );
  }
  let seccomp: { load(): number | undefined; release(): void } | undefined;
  if (spec.linux?.seccomp) {
    const { compileSeccomp } = await import("./seccomp.ts");
    // A name this libseccomp does not know (a newer syscall) is skipped, as runc and crun do.
    seccomp = compileSeccomp(spec.linux.seccomp, { unknownSyscalls: "ignore" });
  }

  const cleanups: (() => void)[] = [];
  const fds: number[] = options.consoleSocketFd !== undefined ? [options.consoleSocketFd] : [];
  const cleanup = () => {
    for (const fd of fds.splice(0)) {
      try {
        sys.close(fd);
      } catch {
        // already closed
      }
    }
    for (const undo of cleanups.splice(0).reverse()) {
      try {
        undo();
      } catch (err) {
        warn(`cleanup after a failed create: ${(err as Error).message}`);
      }
    }
  };
  let pid = 0;
  let armed: Promise<void> = Promise.resolve();
  let lock: ContainerLock | undefined;
  try {
    // Held until the record is written, or what was made is removed: see lockContainer.
    lock = await lockContainer(options.root, id, options);
    reserve(options.root, id);
    cleanups.push(() => remove(options.root, id));
    const fifo = fifoPath(options.root, id);
    sys.mkfifo(fifo, 0o600);
    const fifoFd = sys.open(fifo, O_RDWR | O_CLOEXEC);
    fds.push(fifoFd);

    const layout = detectCgroups();
    const cgroup = cgroupManager({
      id,
      sys,
      warn,
      layout,
      ...(spec.linux?.cgroupsPath ? { cgroupsPath: spec.linux.cgroupsPath } : {}),
    });
    // Early, before an init exists, for the common case; checked again under the cgroup's lock.
    if (cgroupExists(cgroup)) refuseSquatters(id, cgroup, cgroup.pids().length);
    // Registered before the init's kill, so that cleanup (last in, first out) kills first. Not
    // when another container turned out to use the cgroup.
    let cgroupOurs = true;
    cleanups.push(() => {
      if (cgroupOurs) cgroup.destroy();
    });
    // Start the kernel's slow path for attaches now: it holds the cgroup mutex for a grace period,
    // during which we fork the init, which sets itself up while we make its cgroup.
    armed = options.cgroupArmed ?? armCgroupAttach();
    const joinFds = plan.join.map((j) => {
      const fd = sys.open(j.path, O_RDONLY | O_CLOEXEC);
      fds.push(fd);
      checkNamespaceFd(fd, j.type, j.path);
      return fd;
    });
    let consoleSocketFd = options.consoleSocketFd;
    if (consoleSocketFd === undefined && options.consoleSocket) {
      consoleSocketFd = sys.connectUnix(options.consoleSocket);
      fds.push(consoleSocketFd);
    }
    const [syncParent, syncChild] = sys.socketpair(SOCK_SEQPACKET);
    fds.push(syncParent, syncChild);

    const ctx: InitContext = {
      sys,
      syncFd: syncChild,
      fifoFd,
      joinFds,
      cgroup: "parent",
      ignoredSignals: ignoredSignals(),
      cgroupMounts: cgroupMountInfo(layout, cgroup.paths()),
      preserveFds: options.preserveFds ?? 0,
      ...(options.stdio ? { stdio: options.stdio } : {}),
      parentHooks: plan.hooks.prestart.length + plan.hooks.createRuntime.length > 0,
    };
    if (consoleSocketFd !== undefined) ctx.consoleSocketFd = consoleSocketFd;
    if (seccomp) ctx.seccomp = seccomp;

    trace("create: forking");
    pid = forkInit(sys, plan, ctx, syncParent);
    trace("create: forked");
    cleanups.push(() => {
      try {
        sys.kill(pid, SIGNALS.SIGKILL!);
      } catch {
        // gone already
      }
      try {
        sys.waitpid(pid, 0);
      } catch {
        // reaped
      }
    });
    // The init has its own copies; the parent keeps only its end of the sync socket.
    for (
      const fd of [
        syncChild,
        fifoFd,
        ...joinFds,
        ...(consoleSocketFd !== undefined ? [consoleSocketFd] : []),
      ]
    ) {
      sys.close(fd);
      fds.splice(fds.indexOf(fd), 1);
    }
    // Make the init's cgroup and put the init into it while the init sets itself up: an attach waits
    // for an RCU grace period (10-15 ms here, started early by armCgroupAttach), which this way
    // overlaps the init's own work. The init waits for "joined" before its cgroup namespace.
    try {
      cgroup.create();
      trace("create: cgroup created");
      const { lock: cgroupLock, squatters } = await lockCgroup(sys, cgroup);
      try {
        if (squatters > 0) cgroupOurs = false;
        refuseSquatters(id, cgroup, squatters);
        // From here on a killed create leaves a cgroup that delete may empty and remove.
        const creating: CreatingCgroup = {
          cgroupPaths: cgroup.paths(),
          ...(spec.linux?.cgroupsPath ? { cgroupsPath: spec.linux.cgroupsPath } : {}),
        };
        sys.writeFile(creatingPath(options.root, id), JSON.stringify(creating), {
          create: true,
          mode: 0o600,
        });
        cgroup.apply({ ...spec.linux?.resources, devices: plan.deviceRules });
        for (const dir of Object.values(cgroup.paths())) {
          sys.writeFile(`${dir}/cgroup.procs`, String(pid));
        }
      } finally {
        cgroupLock.release();
      }
      trace("create: init in cgroup");
      sendSync(sys, syncParent, { t: "joined" });
    } catch (err) {
      // A write to the init fails when its end of the socket is closed: when it has ended, how it
      // ended says why. Otherwise initFailure ends it, then prefers an error it reported.
      const peerGone = err instanceof SyscallError &&
        (err.errnoName === "EPIPE" || err.errnoName === "ECONNRESET");
      const ended = peerGone ? exitedAlready(sys, pid) : undefined;
      const reported = initFailure(sys, plan.id, pid, syncParent, ended);
      if (reported instanceof FailedPrecondition || (ended !== undefined && reported)) {
        throw reported;
      }
      if (peerGone) {
        throw new Internal(
          `Cannot create container ${
            JSON.stringify(plan.id)
          }: its init (pid ${pid}) was running, but its end of the set-up socket was closed (${
            (err as Error).message
          })`,
          { cause: err },
        );
      }
      throw err;
    }
    // superviseInit closes the sync socket whatever happens: it must not be closed twice, for in a
    // shim another container's fd may have its number by then.
    fds.splice(fds.indexOf(syncParent), 1);
    await superviseInit(sys, plan, syncParent, pid, warn, options.runHooks ?? runHooks);
    await armed;
    trace("create: init ready");

    const stat = processStat(pid);
    if (!stat) throw new Internal(`Container init ${pid} vanished after set-up`);
    const record: ContainerRecord = {
      id,
      bundle,
      pid,
      startTime: stat.startTime,
      created: new Date().toISOString(),
      rootfs: plan.rootfs,
      cgroupPaths: cgroup.paths(),
      ...(spec.linux?.cgroupsPath ? { cgroupsPath: spec.linux.cgroupsPath } : {}),
      owner: Deno.uid() ?? 0,
      terminal: plan.process.terminal,
      ownPidNs: plan.newPid,
    };
    if (spec.annotations) record.annotations = spec.annotations;
    if (plan.hooks.poststart.length) record.poststart = plan.hooks.poststart;
    if (plan.hooks.poststop.length) record.poststop = plan.hooks.poststop;
    save(options.root, record);
    if (options.pidFile) await writePidFile(resolve(options.pidFile), pid);
    trace("create: saved");
    cleanups.length = 0;
    cleanup();
    return { record, pid };
  } catch (err) {
    cleanup();
    throw err;
  } finally {
    seccomp?.release();
    lock?.release();
  }
}

/**
 * Enters the pid namespace for the child, forks the init, and returns to our
 * own. (Time namespaces are the init's business: the kernel refuses setns into
 * one from a multithreaded process, so the parent could never come back.)
 */
function forkInit(sys: Syscall, plan: InitPlan, ctx: InitContext, syncParent: number): number {
  const restore: { fd: number; flag: number }[] = [];
  try {
    if (plan.newPid || plan.pidPath) {
      restore.push({
        fd: sys.open("/proc/self/ns/pid_for_children", O_RDONLY | O_CLOEXEC),
        flag: CLONE_NEWPID,
      });
      if (plan.pidPath) {
        const fd = sys.open(plan.pidPath, O_RDONLY | O_CLOEXEC);
        try {
          checkNamespaceFd(fd, "pid", plan.pidPath);
          sys.setns(fd, CLONE_NEWPID);
        } catch (err) {
          if (!(err instanceof SyscallError)) throw err;
          throw new SyscallError("setns", err.errno, `${plan.pidPath} (pid namespace)`, {
            cause: err,
          });
        } finally {
          sys.close(fd);
        }
      } else {
        sys.unshare(CLONE_NEWPID);
      }
    }
    const pid = sys.fork();
    if (pid === 0) {
      sys.close(syncParent);
      initContainer(plan, ctx);
    }
    return pid;
  } finally {
    for (const { fd, flag } of restore) {
      sys.setns(fd, flag);
      sys.close(fd);
    }
  }
}

/** The wait status of `pid` when it has exited already (it is reaped then), else undefined. Exported for its unit test. */
export function exitedAlready(sys: Syscall, pid: number): number | undefined {
  try {
    const r = sys.waitpid(pid, WNOHANG);
    return r.pid === pid ? r.status : undefined;
  } catch {
    return undefined;
  }
}

/**
 * After a failure on our side: kills and reaps the init (unless `ended`, its
 * status, says it is reaped already), and says what happened to it (its own
 * error first). The kill comes before reading, since a live init may be
 * waiting for a message of ours and would never close its end.
 */
export function initFailure(
  sys: Syscall,
  id: string,
  pid: number,
  syncFd: number,
  ended?: number,
): Error | undefined {
  const prefix = `Cannot create container ${JSON.stringify(id)}`;
  if (ended === undefined) {
    try {
      sys.kill(pid, SIGNALS.SIGKILL!);
    } catch {
      // gone already
    }
  }
  let reported: string | undefined;
  for (;;) {
    let msg;
    try {
      msg = readSync(sys, syncFd);
    } catch {
      break;
    }
    if (msg === undefined) break;
    if (msg.t === "error") {
      reported = msg.m;
      break;
    }
  }
  let status = ended;
  if (status === undefined) {
    try {
      status = sys.waitpid(pid, 0).status;
    } catch {
      // reaped elsewhere
    }
  }
  if (reported !== undefined) return new FailedPrecondition(`${prefix}: ${reported}`);
  if (status === undefined) return undefined;
  const signal = signalOf(status);
  return new Internal(
    `${prefix}: its init ${
      signal ? `was killed by ${signalName(signal)}` : `exited with code ${exitCodeOf(status)}`
    } during set-up`,
  );
}

/** Follows the init's set-up over the sync socket: runs the parent hooks when asked, relays warnings, fails on its error. */
async function superviseInit(
  sys: Syscall,
  plan: InitPlan,
  syncFd: number,
  pid: number,
  warn: (m: string) => void,
  hookRunner: NonNullable<RuntimeOptions["runHooks"]>,
): Promise<void> {
  try {
    for (;;) {
      const msg = readSync(sys, syncFd);
      if (msg === undefined) break;
      if (msg.t === "warn") warn(msg.m);
      else if (msg.t === "error") {
        throw new FailedPrecondition(
          `Cannot create container ${JSON.stringify(plan.id)}: ${msg.m}`,
        );
      } else if (msg.t === "hooks") {
        const state: State = {
          ociVersion: "1.1.0",
          id: plan.id,
          status: "creating",
          pid,
          bundle: plan.bundle,
        };
        await hookRunner("prestart", plan.hooks.prestart, state);
        await hookRunner("createRuntime", plan.hooks.createRuntime, state);
        sendSync(sys, syncFd, { t: "resume" });
      }
    }
  } finally {
    sys.close(syncFd);
  }
  let r: { pid: number; status: number };
  try {
    r = sys.waitpid(pid, WNOHANG);
  } catch (err) {
    // ECHILD: a reaper of the caller's (the shim's) collected it already.
    if (err instanceof SyscallError && err.errnoName === "ECHILD") {
      if (processStat(pid) === undefined) {
        throw new FailedPrecondition(
          `Cannot create container ${JSON.stringify(plan.id)}: its init exited during set-up`,
        );
      }
      return;
    }
    throw err;
  }
  if (r.pid === pid) {
    throw new FailedPrecondition(
      `Cannot create container ${
        JSON.stringify(plan.id)
      }: its init exited during set-up with code ${exitCodeOf(r.status)}`,
    );
  }
}

/** Loads a record and its current status. */
export function inspect(
  id: string,
  options: RuntimeOptions,
): { record: ContainerRecord; status: Status } {
  const sys = options.sys ?? libcSyscall();
  const record = load(options.root, id);
  const status = currentStatus(options.root, record, () => frozen(record, sys));
  return { record, status };
}

function frozen(record: ContainerRecord, sys: Syscall): boolean {
  try {
    return cgroupFor(record, sys).frozen();
  } catch {
    return false;
  }
}

/** The OCI State of a container. */
export function containerState(id: string, options: RuntimeOptions): State {
  const { record, status } = inspect(id, options);
  return ociState(record, status);
}

/** Lets a created container run: opens the exec fifo so the init execs the process, then runs poststart hooks. */
export async function startContainer(id: string, options: RuntimeOptions): Promise<void> {
  const record = await withContainerLock(options.root, id, options, () => startLocked(id, options));
  trace("start: started");
  await runLateHooks("poststart", record.poststart, ociState(record, "running"), options);
}

/** Runs poststart or poststop hooks: the container's state has changed already, so a failure is a warning. */
async function runLateHooks(
  kind: "poststart" | "poststop",
  hooks: readonly Hook[] | undefined,
  state: State,
  options: RuntimeOptions,
): Promise<void> {
  if (!hooks?.length) return;
  try {
    await (options.runHooks ?? runHooks)(kind, hooks, state);
  } catch (err) {
    (options.warn ?? defaultWarn)((err as Error).message);
  }
}

/** The part of {@link startContainer} done under the container's lock: lets the init exec. */
function startLocked(id: string, options: RuntimeOptions): ContainerRecord {
  const sys = options.sys ?? libcSyscall();
  const { record, status } = inspect(id, options);
  checkTransition(id, status, "start");
  const fifo = fifoPath(options.root, id);
  let fd: number;
  try {
    fd = sys.open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
  } catch (err) {
    // ENXIO: nobody reads the fifo any more, the init is gone.
    if (err instanceof SyscallError && err.errnoName === "ENXIO") {
      throw new FailedPrecondition(
        `Cannot start container ${JSON.stringify(id)}: its init has exited`,
      );
    }
    throw err;
  }
  try {
    // The init reads one byte and goes on to exec; its fifo fd is close-on-exec, so keep
    // writing until EPIPE says the process has been executed (or has died): poststart hooks
    // and our caller then see the container's own process.
    const one = new Uint8Array([0x30]);
    for (let waited = 0;; waited++) {
      try {
        sys.write(fd, one);
      } catch (err) {
        if (err instanceof SyscallError && err.errnoName === "EPIPE") break;
        if (!(err instanceof SyscallError) || err.errnoName !== "EAGAIN") throw err;
      }
      if (waited > 300_000) {
        throw new FailedPrecondition(
          `Cannot start container ${JSON.stringify(id)}: its init did not exec`,
        );
      }
      sys.sleep(waited < 200 ? 0.05 : 1);
    }
  } finally {
    sys.close(fd);
  }
  Deno.removeSync(fifo);
  return record;
}

/** Sends a signal to the container's init, or with `all` to every process in its cgroup. */
export async function killContainer(
  id: string,
  signal: number,
  options: RuntimeOptions & { all?: boolean },
): Promise<void> {
  await withContainerLock(options.root, id, options, () => killLocked(id, signal, options));
}

function killLocked(id: string, signal: number, options: RuntimeOptions & { all?: boolean }): void {
  const sys = options.sys ?? libcSyscall();
  const { record, status } = inspect(id, options);
  const cgroup = cgroupFor(record, sys);
  // As runc: --all also reaches what a stopped container left in its cgroup (one without its own
  // PID namespace keeps its other processes when its init exits); with nothing left, nothing to do.
  if (options.all && status === "stopped") {
    if (cgroup.pids().length > 0) cgroup.signalAll(signal);
    return;
  }
  checkTransition(id, status, "kill");
  if (options.all) cgroup.signalAll(signal);
  else sys.kill(record.pid, signal);
  // A frozen process only acts on SIGKILL once thawed.
  if (status === "paused" && signal === SIGNALS.SIGKILL) cgroup.thaw();
}

/** Freezes every process of a running container, under its lock (a racing delete goes first or after). */
export async function pauseContainer(id: string, options: RuntimeOptions): Promise<void> {
  await freezeLocked(id, "pause", options);
}

/** Thaws a paused container, under its lock. */
export async function resumeContainer(id: string, options: RuntimeOptions): Promise<void> {
  await freezeLocked(id, "resume", options);
}

async function freezeLocked(
  id: string,
  operation: "pause" | "resume",
  options: RuntimeOptions,
): Promise<void> {
  await withContainerLock(options.root, id, options, () => {
    const sys = options.sys ?? libcSyscall();
    const { record, status } = inspect(id, options);
    checkTransition(id, status, operation);
    const cgroup = cgroupFor(record, sys);
    if (operation === "pause") cgroup.freeze();
    else cgroup.thaw();
  });
}

/** Pids of every process in the container's cgroup (a stopped one's too: see {@link killContainer}). */
export function containerPids(id: string, options: RuntimeOptions): number[] {
  const sys = options.sys ?? libcSyscall();
  const { record } = inspect(id, options);
  return cgroupFor(record, sys).pids();
}

/** Options of {@link deleteContainer}. */
export interface DeleteOptions extends RuntimeOptions {
  /** Kill a running or paused container first; an unknown id is no error. */
  force?: boolean;
  /** The bundle's config: names the cgroup of a cut-short create that recorded none (removeAbandoned). */
  spec?: Spec;
}

/**
 * Deletes a container: a stopped or created one always, a running or paused
 * one only with `force` (killed first). Removes its cgroup and state, then
 * runs poststop hooks. With `force`, an unknown id is not an error. It waits
 * for a `create` of the same id in progress (see lockContainer), and removes
 * what a killed one left.
 */
export async function deleteContainer(id: string, options: DeleteOptions): Promise<void> {
  const record = await withContainerLock(
    options.root,
    id,
    options,
    () => deleteLocked(id, options),
  );
  if (record) await runLateHooks("poststop", record.poststop, ociState(record, "stopped"), options);
}

/** The part of {@link deleteContainer} done under the container's lock; returns the record removed, if any. */
async function deleteLocked(
  id: string,
  options: DeleteOptions,
): Promise<ContainerRecord | undefined> {
  const sys = options.sys ?? libcSyscall();
  let record: ContainerRecord, status: Status;
  try {
    ({ record, status } = inspect(id, options));
  } catch (err) {
    if (!(err instanceof NotFound)) throw err;
    // Holding the lock, a directory without a record is what a killed create left (runc removes
    // it here too).
    await removeAbandoned(id, options);
    if (options.force) return undefined;
    throw err;
  }
  if (!options.force) checkTransition(id, status, "delete");
  const cgroup = cgroupFor(record, sys);
  // The processes a stopped container without its own PID namespace left go too, as with runc
  // (with its own, the kernel killed them with its init).
  if (status !== "stopped" || (record.ownPidNs !== true && cgroup.pids().length > 0)) {
    try {
      cgroup.signalAll(SIGNALS.SIGKILL!);
    } catch {
      // the cgroup may be gone
    }
    if (initAlive(record)) {
      try {
        sys.kill(record.pid, SIGNALS.SIGKILL!);
      } catch {
        // exited meanwhile
      }
    }
    if (status === "paused") cgroup.thaw();
    await waitUntil(() => !initAlive(record), 10_000);
  }
  trace("delete: processes gone");
  try {
    cgroup.destroy();
  } catch (err) {
    throw new FailedPrecondition(
      `Cannot delete container ${JSON.stringify(id)}: ${(err as Error).message}`,
      { cause: err },
    );
  }
  remove(options.root, id);
  trace("delete: removed");
  return record;
}

/**
 * Removes what a create that was cut short left of container `id`, under its
 * lock: no record, and the init may still exist, waiting for `start` on the
 * exec fifo (it no longer dies with its parent once it is ready). Whatever is
 * in the cgroup the create recorded as its own (saveCreating) is killed, then
 * the cgroup and the state directory go. Without that record, `spec` (the
 * bundle's config) names the cgroup, else no cgroup was made.
 */
async function removeAbandoned(id: string, options: DeleteOptions): Promise<void> {
  if (!exists(containerDir(options.root, id))) return;
  const sys = options.sys ?? libcSyscall();
  const warn = options.warn ?? defaultWarn;
  const creating = loadCreating(options.root, id);
  const cgroupsPath = creating ? creating.cgroupsPath : options.spec?.linux?.cgroupsPath;
  const cgroup = creating || options.spec
    ? cgroupManager({
      id,
      sys,
      warn,
      ...(creating ? { paths: creating.cgroupPaths } : {}),
      ...(cgroupsPath ? { cgroupsPath } : {}),
    })
    : undefined;
  if (cgroup && cgroupExists(cgroup)) {
    try {
      cgroup.signalAll(SIGNALS.SIGKILL!);
    } catch {
      // emptied meanwhile
    }
    await waitUntil(() => cgroup.pids().length === 0, 10_000);
    cgroup.destroy();
  }
  remove(options.root, id);
}

/**
 * Removes what a create that was cut short left of container `id` (the
 * process creating it was killed: its cleanup never ran). With a state
 * record this is a forced delete; without one, see removeAbandoned. `spec` is
 * the bundle's config, for its cgroups path. Returns false when nothing of
 * `id` was there.
 */
export async function removeIncomplete(
  id: string,
  options: RuntimeOptions & { spec?: Spec },
): Promise<boolean> {
  if (!exists(containerDir(options.root, id))) return false;
  await deleteContainer(id, { ...options, force: true });
  return true;
}

async function waitUntil(done: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) {
      throw new FailedPrecondition("Timed out waiting for the container's processes to exit");
    }
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** One row of {@link listContainers}. */
export interface ContainerSummary {
  id: string;
  pid: number;
  status: Status;
  bundle: string;
  created: string;
  owner: string;
  annotations?: Record<string, string>;
}

/** Every container under the root, with its current status. */
export function listContainers(options: RuntimeOptions): ContainerSummary[] {
  const out: ContainerSummary[] = [];
  for (const id of listIds(options.root)) {
    try {
      const { record, status } = inspect(id, options);
      const row: ContainerSummary = {
        id,
        pid: status === "stopped" ? 0 : record.pid,
        status,
        bundle: record.bundle,
        created: record.created,
        owner: record.owner === 0 ? "root" : String(record.owner),
      };
      if (record.annotations) row.annotations = record.annotations;
      out.push(row);
    } catch {
      // deleted while we listed
    }
  }
  return out;
}
