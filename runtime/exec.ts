/**
 * `tug runtime exec`: another process in a created or running container. The
 * runtime forks an exec stage that makes itself non-dumpable (so nothing in
 * the container can read its memory or open /proc/<pid>/exe: the
 * CVE-2019-5736 class), joins the container's cgroup and namespaces, applies
 * the process settings and execs. Like the init, the stage is a fork of the
 * calling Deno process: no second Deno start-up.
 *
 * @module
 */

import {
  CLONE_NEWPID,
  CLOSE_RANGE_CLOEXEC,
  NAMESPACES,
  O_CLOEXEC,
  O_RDONLY,
  PR_SET_DUMPABLE,
  PR_SET_PDEATHSIG,
  SIGNALS,
  SOCK_SEQPACKET,
} from "../ffi/constants.ts";
import { libcSyscall } from "../ffi/libc.ts";
import type { Syscall } from "../ffi/syscall.ts";
import { FailedPrecondition, InvalidArgument } from "../errors.ts";
import { trace } from "../trace.ts";
import type { RuntimeOptions } from "./container.ts";
import { inspect } from "./container.ts";
import { attachTerminal, closeOtherFds, prepareProcess, readSync, sendSync } from "./init.ts";
import { loadSpec, planProcess } from "./plan.ts";
import { initAlive, lockContainer } from "./state.ts";
import type { Capabilities, Process } from "./spec.ts";

/** Options of {@link execInContainer}. */
export interface ExecOptions extends RuntimeOptions {
  /** The process to run (an OCI Process, as in `exec --process process.json`). */
  process: Process;
  /** Socket that receives the pty master when process.terminal is true. */
  consoleSocket?: string;
  /** An already connected console socket (taken over and closed). */
  consoleSocketFd?: number;
  /** Number of fds above stdio to pass on. */
  preserveFds?: number;
  /** Fds to become the process's stdin, stdout and stderr (default: ours). */
  stdio?: [number, number, number];
}

// Join order: mount last (the paths to the others are opened before), and the user namespace is never involved.
const JOIN_ORDER = ["time", "ipc", "uts", "network", "cgroup", "pid", "mount"];

/** The container's default process merged with `exec` flags, the way runc builds one. */
export function execProcess(base: Process | undefined, overrides: {
  args: string[];
  env?: string[];
  cwd?: string;
  user?: { uid: number; gid: number; additionalGids?: number[] };
  terminal?: boolean;
  capabilities?: string[];
  noNewPrivileges?: boolean;
}): Process {
  if (overrides.args.length === 0) throw new InvalidArgument("exec needs a command to run");
  const process: Process = {
    ...(base ?? { user: { uid: 0, gid: 0 }, cwd: "/" }),
    args: overrides.args,
    terminal: overrides.terminal ?? false,
  };
  delete process.consoleSize;
  if (overrides.env?.length) {
    const env = new Map((process.env ?? []).map((e) => [e.slice(0, e.indexOf("=")), e]));
    for (const e of overrides.env) env.set(e.slice(0, e.indexOf("=")), e);
    process.env = [...env.values()];
  }
  if (overrides.cwd) process.cwd = overrides.cwd;
  if (overrides.user) process.user = { ...overrides.user };
  if (overrides.noNewPrivileges) process.noNewPrivileges = true;
  if (overrides.capabilities?.length) {
    // As runc since 1.1.2 (CVE-2022-29162): never into the inheritable set, and into the ambient
    // one only when the container's process has an inheritable set, which ambient needs.
    const caps = { ...process.capabilities };
    const sets: (keyof Capabilities)[] = ["bounding", "effective", "permitted"];
    if (caps.inheritable !== undefined) sets.push("ambient");
    for (const set of sets) {
      caps[set] = [...new Set([...(caps[set] ?? []), ...overrides.capabilities])];
    }
    process.capabilities = caps;
  }
  return process;
}

/**
 * Starts `options.process` inside container `id`. Resolves once the process
 * has been executed (the stage's sync socket is close-on-exec) with its host
 * pid, a child of the caller; errors in the set-up reject with their cause.
 */
export async function execInContainer(id: string, options: ExecOptions): Promise<{ pid: number }> {
  // Held until the exec stage is in the container's cgroup (or has failed): a delete racing it
  // goes first (then this finds no container) or after (then it kills the stage or the process with
  // the rest). runc takes no lock here, and its exec can land in a cgroup its delete is removing.
  const lock = await lockContainer(options.root, id, options);
  let held = true;
  const release = () => {
    if (held) lock.release();
    held = false;
  };
  try {
    return await execLocked(id, options, release);
  } finally {
    release();
  }
}

async function execLocked(
  id: string,
  options: ExecOptions,
  joined: () => void,
): Promise<{ pid: number }> {
  const sys = options.sys ?? libcSyscall();
  const warn = options.warn ?? ((m: string) => console.error(`tug runtime: warning: ${m}`));
  const { record, status } = inspect(id, options);
  if (status !== "running" && status !== "created") {
    throw new FailedPrecondition(`Cannot exec in container ${JSON.stringify(id)}: it is ${status}`);
  }
  const { process, warnings } = planProcess(options.process);
  warnings.forEach(warn);
  const hasConsole = options.consoleSocket !== undefined || options.consoleSocketFd !== undefined;
  if (process.terminal && !hasConsole) {
    throw new InvalidArgument("Cannot allocate a terminal without a console socket");
  }
  const spec = loadSpec(record.bundle);
  let seccomp: { load(): number | undefined; release(): void } | undefined;
  if (spec.linux?.seccomp) {
    const { compileSeccomp } = await import("./seccomp.ts");
    // A name this libseccomp does not know (a newer syscall) is skipped, as runc and crun do.
    seccomp = compileSeccomp(spec.linux.seccomp, { unknownSyscalls: "ignore" });
  }

  const fds: number[] = options.consoleSocketFd !== undefined ? [options.consoleSocketFd] : [];
  const closeAll = () => fds.splice(0).forEach((fd) => sys.close(fd));
  try {
    // Namespaces of the container's init that differ from ours: those are the ones to join.
    const joins: { type: string; flag: number; fd: number }[] = [];
    for (const type of JOIN_ORDER) {
      const file = NAMESPACES[type]!.file;
      let ours: string;
      try {
        ours = Deno.readLinkSync(`/proc/self/ns/${file}`);
      } catch {
        continue; // a namespace type this kernel lacks
      }
      // The init may exit meanwhile: then it has no namespaces to read (this joined none of them
      // and ran the process in ours) and its pid may be another process's.
      let theirs: string, fd: number;
      try {
        theirs = Deno.readLinkSync(`/proc/${record.pid}/ns/${file}`);
        if (theirs === ours) continue;
        fd = sys.open(`/proc/${record.pid}/ns/${file}`, O_RDONLY | O_CLOEXEC);
      } catch {
        throw stopped(id);
      }
      fds.push(fd);
      joins.push({ type, flag: NAMESPACES[type]!.flag, fd });
    }
    // The fds hold the namespaces: they are the init's if it is still the same process.
    if (!initAlive(record)) throw stopped(id);
    let consoleSocketFd = options.consoleSocketFd;
    if (consoleSocketFd === undefined && options.consoleSocket) {
      consoleSocketFd = sys.connectUnix(options.consoleSocket);
      fds.push(consoleSocketFd);
    }
    const [syncParent, syncChild] = sys.socketpair(SOCK_SEQPACKET);
    fds.push(syncParent, syncChild);
    const ctx = {
      syncFd: syncChild,
      joinFds: joins.map((j) => j.fd),
      preserveFds: options.preserveFds ?? 0,
      ...(consoleSocketFd !== undefined ? { consoleSocketFd } : {}),
      ...(options.stdio ? { stdio: options.stdio } : {}),
    };

    // setns(CLONE_NEWPID) only changes where our children go: enter, fork, come back.
    const pidJoin = joins.find((j) => j.type === "pid");
    const ownPid = pidJoin ? sys.open("/proc/self/ns/pid_for_children", O_RDONLY | O_CLOEXEC) : -1;
    let pid: number;
    try {
      if (pidJoin) sys.setns(pidJoin.fd, CLONE_NEWPID);
      trace("exec: forking");
      pid = sys.fork();
      if (pid === 0) {
        sys.close(syncParent);
        execStage(sys, ctx, {
          cgroupPaths: Object.values(record.cgroupPaths),
          joins: joins.filter((j) => j.type !== "pid"),
          process,
          consoleSocketFd,
          ...(seccomp ? { seccomp } : {}),
        });
      }
    } finally {
      if (pidJoin) {
        sys.setns(ownPid, CLONE_NEWPID);
        sys.close(ownPid);
      }
    }
    for (const fd of fds.splice(0)) if (fd !== syncParent) sys.close(fd);
    fds.push(syncParent);
    // The stage's end is close-on-exec: end of file means the process has been executed.
    for (;;) {
      const msg = readSync(sys, syncParent);
      if (msg === undefined) break;
      if (msg.t === "joined") joined();
      if (msg.t === "warn") warn(msg.m);
      if (msg.t === "error") {
        try {
          sys.waitpid(pid, 0);
        } catch {
          // reaped
        }
        throw new FailedPrecondition(`Cannot exec in container ${JSON.stringify(id)}: ${msg.m}`);
      }
    }
    trace("exec: executed");
    return { pid };
  } finally {
    closeAll();
    seccomp?.release();
  }
}

function stopped(id: string): FailedPrecondition {
  return new FailedPrecondition(`Cannot exec in container ${JSON.stringify(id)}: it is stopped`);
}

interface StageTask {
  cgroupPaths: string[];
  joins: { type: string; flag: number; fd: number }[];
  process: ReturnType<typeof planProcess>["process"];
  consoleSocketFd: number | undefined;
  seccomp?: { load(): number | undefined };
}

/** The exec stage, in the forked child: synchronous Syscall calls only, ending in execve or _exit(1). */
function execStage(sys: Syscall, ctx: Parameters<typeof closeOtherFds>[1], task: StageTask): never {
  try {
    closeOtherFds(sys, ctx);
    sys.prctl(PR_SET_PDEATHSIG, SIGNALS.SIGKILL!);
    // Before anything of ours enters the container: no /proc/<pid>/mem or exe for its processes.
    sys.prctl(PR_SET_DUMPABLE, 0);
    for (const dir of task.cgroupPaths) sys.writeFile(`${dir}/cgroup.procs`, "0");
    sendSync(sys, ctx.syncFd, { t: "joined" });
    for (const j of task.joins) {
      sys.setns(j.fd, j.flag);
      sys.close(j.fd);
    }
    // setns into the mount namespace left us at its root: the container's.
    if (task.process.terminal) {
      sys.setsid();
      attachTerminal(sys, task.consoleSocketFd, task.process.consoleSize);
    }
    const debugPause = Number(Deno.env.get("TUG_TEST_EXEC_PAUSE_MS") ?? 0);
    const { executable, env } = prepareProcess(sys, task.process, {
      ...(task.seccomp ? { seccomp: task.seccomp } : {}),
      warn: (m) => sendSync(sys, ctx.syncFd, { t: "warn", m }),
    });
    // For tests only: linger as the (non-dumpable) stage inside the container.
    if (debugPause > 0) sys.sleep(debugPause);
    sys.prctl(PR_SET_PDEATHSIG, 0);
    sys.resetSignals();
    // Mark, not close: the sync socket must stay open until execve succeeds, to report a failure.
    sys.closeRange(3 + ctx.preserveFds, 0xffffffff, CLOSE_RANGE_CLOEXEC);
    sys.execve(executable, task.process.args, env);
  } catch (err) {
    if ((err as { endsProcess?: boolean })?.endsProcess) throw err;
    try {
      sendSync(sys, ctx.syncFd, {
        t: "error",
        m: err instanceof Error ? err.message : String(err),
      });
    } catch {
      // the runtime is gone
    }
  }
  return sys.exit(1);
}
