/**
 * What a shim does for the daemon: creates, starts, signals, execs into and
 * deletes containers with the runtime library in-process (a container's init
 * is forked from the shim: no process per container besides its own), relays
 * their output into log files and attached FIFOs (shim/relay.ts), collects exit statuses
 * through its reaper and records them on disk, so that they survive a daemon
 * restart.
 *
 * @module
 */

import {
  O_CLOEXEC,
  O_NOFOLLOW,
  O_NONBLOCK,
  O_RDONLY,
  O_WRONLY,
  S_IFIFO,
  S_IFMT,
  SIGNALS,
  SOCK_STREAM,
} from "../ffi/constants.ts";
import { libcSyscall } from "../ffi/libc.ts";
import { dupCloexec, Poller, setNonBlocking } from "../ffi/poller.ts";
import { exitCodeOf, type Syscall, SyscallError } from "../ffi/syscall.ts";
import { AlreadyExists, FailedPrecondition, InvalidArgument, NotFound } from "../errors.ts";
import type { Mount } from "../images/types.ts";
import { detachAllAsync, mountAll, unmountAll } from "../images/snapshots/mount.ts";
import {
  cgroupFor,
  containerPids,
  createContainer,
  deleteContainer,
  inspect,
  killContainer,
  pauseContainer,
  removeIncomplete,
  resumeContainer,
  type RuntimeOptions,
  startContainer,
} from "../runtime/container.ts";
import type { Hook, Process, Spec, State } from "../runtime/spec.ts";
import { FailedPrecondition as HookFailed } from "../errors.ts";
import { exists } from "../util/fs.ts";
import { join } from "../util/path.ts";
import { forkHook } from "../runtime/hooks.ts";
import { trace } from "../trace.ts";
import { LogWriter } from "./logs.ts";
import { Reaper } from "./reaper.ts";
import { Relay } from "./relay.ts";
import type { ShimEvent } from "./rpc.ts";

/**
 * The one buffer every relay reads into. Poller callbacks run one at a time
 * on the main thread and hand each chunk on (log, FIFO, pty) before they
 * return (a relay copies only what its sink cannot take yet), so one buffer
 * serves every container; a buffer per pump made 100+ KiB of garbage per
 * container.
 */
const PUMP_BUFFER = new Uint8Array(64 * 1024);

/** Exited execs whose status a container keeps (a long-lived container runs execs without end). */
const KEPT_EXECS = 64;

/** How long a delete waits for the output of an exited container to be read. */
const DRAIN_MS = 2000;

/** How a container's or exec's stdio is wired. */
export interface StdioPaths {
  /** A FIFO the CLI writes (opened O_RDWR by the CLI first). */
  stdin?: string;
  /** FIFOs the CLI reads, opened for reading by the CLI before the request (else the request is refused). */
  stdout?: string;
  stderr?: string;
}

/** Parameters of `create`. */
export interface CreateParams extends StdioPaths {
  namespace: string;
  id: string;
  /** The complete OCI spec; `root.path` is set by the shim. */
  spec: Spec;
  /** The container's root filesystem as Mount records (from a snapshotter). */
  rootfs: Mount[];
  /** A user as in an image config (`name`, `uid`, `name:group`, `uid:gid`), resolved in the rootfs. */
  user?: string;
  /** Log file and rotation. */
  log: { path: string; maxSize: number; maxFiles: number };
  /** Start the process at once (create and start in one request). */
  start?: boolean;
}

/** An exit, as recorded. */
export interface ExitStatus {
  exitCode: number;
  exitedAt: string;
  oomKilled?: boolean;
  /** Set when the exit code is unknown (the shim that started the container died before it exited). */
  unknown?: boolean;
}

/** What the shim knows about a container; persisted in `containers/<ns>/<id>.json`. */
export interface ContainerRecord {
  namespace: string;
  id: string;
  pid: number;
  status: "created" | "running" | "paused" | "stopped";
  logPath: string;
  terminal: boolean;
  exit?: ExitStatus;
}

interface Live {
  record: ContainerRecord;
  log?: LogWriter;
  /** The output relays (pipes or the pty master, into the log and the attached FIFOs). */
  outputs: { stdout?: Relay; stderr?: Relay };
  /** The pty master while the container's terminal is open, for resizes and stdin. */
  master?: number;
  /** The attached clients' stdin FIFOs relayed into the pty. */
  stdins: Relay[];
  execs: Map<string, Exec>;
  exited: Promise<ExitStatus>;
  onExit: (s: ExitStatus) => void;
  /** Settles once the host's mount of the rootfs is gone (see {@link rootfsHeldByInit}). */
  rootfsDetached?: Promise<void>;
}

/** An exec's process and, with a terminal, its relays. */
interface Exec {
  pid: number;
  exit?: ExitStatus;
  master?: number;
  relays: Relay[];
}

/** Options for {@link ShimService}. */
export interface ShimServiceOptions {
  /** The shim's state directory (`<state>/shims/<group>`). */
  dir: string;
  publish: (event: ShimEvent) => void;
  sys?: Syscall;
  warn?: (message: string) => void;
}

/**
 * Opens a client's FIFO (non-blocking, close-on-exec), refusing anything
 * else: the shim runs as root, and a path naming a regular file had the
 * container's output written over it, or the file fed to the container as
 * its stdin (a helper's probes; containerd's fifo package refuses them too).
 */
function openFifo(sys: Syscall, path: string, access: number): number {
  const notFifo = () => new InvalidArgument(`Cannot use ${path} for stdio: it is not a FIFO`);
  let info: Deno.FileInfo | undefined;
  try {
    info = Deno.lstatSync(path);
  } catch {
    // missing: the open below says so
  }
  if (info && !info.isFifo) throw notFifo(); // not even opened: a device's open may act
  const fd = sys.open(path, access | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW);
  if ((sys.fstat(fd).mode & S_IFMT) !== S_IFIFO) {
    sys.close(fd);
    throw notFifo();
  }
  return fd;
}

/**
 * Opens the read end of a client's FIFO without waiting for a writer: a
 * client that names a FIFO and never opens its end must not hang the shim.
 * With `blocking`, O_NONBLOCK is cleared afterwards (a process's own stdin);
 * if no writer ever comes, the process reads end of file.
 */
function openFifoReader(sys: Syscall, path: string, options: { blocking: boolean }): number {
  const fd = openFifo(sys, path, O_RDONLY);
  if (options.blocking) {
    try {
      setNonBlocking(fd, false);
    } catch (err) {
      sys.close(fd);
      throw err;
    }
  }
  return fd;
}

/**
 * Opens the write end of a client's output FIFO, non-blocking. The client
 * must hold the read end already (the CLI opens it before its request):
 * then a client that goes away is seen (EPIPE) and its output dropped, where
 * a FIFO the shim also held open for reading would fill and stop the
 * container for good.
 */
function openFifoWriter(sys: Syscall, path: string): number {
  try {
    return openFifo(sys, path, O_WRONLY);
  } catch (err) {
    if (err instanceof SyscallError && err.errnoName === "ENXIO") {
      throw new FailedPrecondition(
        `Nobody reads the FIFO ${path}: open its read end before the request`,
      );
    }
    throw err;
  }
}

function readDirQuietly(path: string): Deno.DirEntry[] {
  try {
    return [...Deno.readDirSync(path)];
  } catch {
    return [];
  }
}

/** The shim's containers and what can be done with them. */
export class ShimService {
  readonly #dir: string;
  readonly #sys: Syscall;
  readonly #publish: (event: ShimEvent) => void;
  readonly #warn: (message: string) => void;
  readonly #poller = new Poller();
  readonly #reaper: Reaper;
  readonly #live = new Map<string, Live>();
  /** Pid → container key, for exits of inits. */
  readonly #byPid = new Map<number, string>();
  /** Keys of the containers being created. */
  readonly #creating = new Set<string>();

  constructor(options: ShimServiceOptions) {
    this.#dir = options.dir;
    this.#sys = options.sys ?? libcSyscall();
    this.#publish = options.publish;
    this.#warn = options.warn ?? ((m) => console.error(`tug shim: warning: ${m}`));
    this.#reaper = new Reaper({
      sys: this.#sys,
      onExit: (pid, status) => this.#onChildExit(pid, status),
    });
  }

  /**
   * Starts reaping, adopts the containers a previous shim left behind, and
   * removes what its creates cut short left (see {@link ShimService.create}).
   */
  async open(): Promise<void> {
    Deno.mkdirSync(join(this.#dir, "runtime"), { recursive: true, mode: 0o700 });
    Deno.mkdirSync(join(this.#dir, "containers"), { recursive: true, mode: 0o700 });
    this.#reaper.start();
    this.#adopt();
    const leftovers = new Set<string>();
    for (const e of readDirQuietly(join(this.#dir, "runtime"))) {
      const plus = e.name.indexOf("+");
      if (plus > 0) leftovers.add(this.#key(e.name.slice(0, plus), e.name.slice(plus + 1)));
    }
    for (const ns of readDirQuietly(join(this.#dir, "bundles"))) {
      for (const e of readDirQuietly(join(this.#dir, "bundles", ns.name))) {
        leftovers.add(this.#key(ns.name, e.name));
      }
    }
    for (const key of leftovers) {
      if (this.#live.has(key)) continue;
      const [namespace, id] = key.split("/") as [string, string];
      try {
        await this.#removeLeftover(namespace, id);
      } catch (err) {
        this.#warn(
          `cannot remove what a cut-short create of ${id} left: ${(err as Error).message}`,
        );
      }
    }
  }

  /**
   * Removes what a create of a container that no record names left: a shim
   * killed while creating it never ran its cleanup. Its init may be waiting
   * for start (runtime/container.ts removeIncomplete); its rootfs may still be
   * mounted in the bundle.
   */
  async #removeLeftover(namespace: string, id: string): Promise<void> {
    const bundle = this.#bundle(namespace, id);
    const runtimeId = this.#runtimeId(namespace, id);
    if (!exists(bundle) && !exists(join(this.#dir, "runtime", runtimeId))) return;
    let spec: Spec | undefined;
    try {
      spec = JSON.parse(Deno.readTextFileSync(join(bundle, "config.json")));
    } catch {
      // not written yet: the cgroups path is the default one
    }
    await removeIncomplete(runtimeId, {
      ...this.#runtime(),
      ...(spec ? { spec } : {}),
    });
    // Unmounted first: a removal must never reach into the image's files.
    unmountAll(join(bundle, "rootfs"), { sys: this.#sys, detach: true });
    try {
      Deno.removeSync(bundle, { recursive: true });
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
  }

  /** Number of containers the shim holds. */
  get size(): number {
    return this.#live.size;
  }

  #key(namespace: string, id: string): string {
    return `${namespace}/${id}`;
  }

  /** The runtime id: namespaces and container ids never contain "+", so this cannot collide. */
  #runtimeId(namespace: string, id: string): string {
    return `${namespace}+${id}`;
  }

  #runtime(): RuntimeOptions {
    return {
      root: join(this.#dir, "runtime"),
      sys: this.#sys,
      warn: this.#warn,
      runHooks: (kind, hooks, state) => this.#runHooks(kind, hooks, state),
    };
  }

  #bundle(namespace: string, id: string): string {
    return join(this.#dir, "bundles", namespace, id);
  }

  #recordPath(namespace: string, id: string): string {
    return join(this.#dir, "containers", namespace, `${id}.json`);
  }

  #save(record: ContainerRecord): void {
    const path = this.#recordPath(record.namespace, record.id);
    Deno.mkdirSync(join(this.#dir, "containers", record.namespace), {
      recursive: true,
      mode: 0o700,
    });
    Deno.writeTextFileSync(`${path}.tmp`, JSON.stringify(record));
    Deno.renameSync(`${path}.tmp`, path);
  }

  #get(namespace: string, id: string): Live {
    const live = this.#live.get(this.#key(namespace, id));
    if (!live) {
      throw new NotFound(
        `Container ${JSON.stringify(id)} has no task in namespace ${JSON.stringify(namespace)}`,
      );
    }
    return live;
  }

  /**
   * Creates a container: bundle, rootfs mount, stdio, runtime create. Its
   * process waits for start(), or starts at once with `start`.
   */
  async create(p: CreateParams): Promise<{ pid: number }> {
    trace("shim create: in");
    const key = this.#key(p.namespace, p.id);
    if (this.#live.has(key) || this.#creating.has(key)) {
      throw new AlreadyExists(`Container ${JSON.stringify(p.id)} has a task already`);
    }
    this.#creating.add(key);
    try {
      // Normally removed when this shim opened; this is for what that could not remove then.
      await this.#removeLeftover(p.namespace, p.id);
      return await this.#create(p, key);
    } finally {
      this.#creating.delete(key);
    }
  }

  async #create(p: CreateParams, key: string): Promise<{ pid: number }> {
    const sys = this.#sys;
    const bundle = this.#bundle(p.namespace, p.id);
    const rootfs = join(bundle, "rootfs");
    const undo: (() => void)[] = [];
    const fds: number[] = [];
    const closeFds = () => fds.splice(0).forEach((fd) => this.#closeQuietly(fd));
    let created: { pid: number };
    try {
      Deno.mkdirSync(rootfs, { recursive: true, mode: 0o755 });
      undo.push(() => Deno.removeSync(bundle, { recursive: true }));
      if (p.rootfs.length) {
        mountAll(p.rootfs, rootfs, { sys });
        undo.push(() => unmountAll(rootfs, { sys, detach: true }));
      }
      const spec: Spec = structuredClone(p.spec);
      spec.root = { ...(spec.root ?? {}), path: "rootfs" };
      if (p.user !== undefined && spec.process) {
        spec.process.user = { ...spec.process.user, ...resolveUser(rootfs, p.user) };
      }
      Deno.writeTextFileSync(join(bundle, "config.json"), JSON.stringify(spec));
      Deno.mkdirSync(p.log.path.slice(0, p.log.path.lastIndexOf("/")), {
        recursive: true,
        mode: 0o700,
      });
      const log = new LogWriter(p.log.path, p.log);
      undo.push(() => log.close());

      const terminal = spec.process?.terminal === true;
      // The CLI holds the FIFO's write side open already, so this open does not block. With a terminal
      // the shim reads it (non-blocking); without, it becomes the container's own (blocking) stdin.
      const stdin = p.stdin
        ? openFifoReader(sys, p.stdin, { blocking: !terminal })
        : sys.open("/dev/null", O_RDONLY | O_CLOEXEC);
      fds.push(stdin);
      const live: Live = {
        record: {
          namespace: p.namespace,
          id: p.id,
          pid: 0,
          status: "created",
          logPath: p.log.path,
          terminal,
        },
        log,
        outputs: {},
        stdins: [],
        execs: new Map(),
        exited: Promise.resolve({ exitCode: 0, exitedAt: "" }),
        onExit: () => {},
      };
      live.exited = new Promise((resolve) => (live.onExit = resolve));
      for (const stream of terminal ? ["stdout"] as const : ["stdout", "stderr"] as const) {
        live.outputs[stream] = this.#output(live, stream);
      }
      undo.push(() => this.#closeRelays(live));
      this.#attach(live, p);

      if (terminal) {
        const [ours, theirs] = sys.socketpair(SOCK_STREAM);
        fds.push(ours);
        created = await createContainer(this.#runtimeId(p.namespace, p.id), {
          ...this.#runtime(),
          bundle,
          spec,
          consoleSocketFd: theirs,
        });
        const master = sys.recvFds(ours, 256).fds[0];
        if (master === undefined) {
          throw new FailedPrecondition("The container's init sent no terminal");
        }
        live.master = master;
        live.outputs.stdout!.start(master);
        if (p.stdin) {
          fds.splice(fds.indexOf(stdin), 1);
          live.stdins.push(this.#stdinRelay(stdin, master));
        }
      } else {
        const [outR, outW] = sys.pipe();
        const [errR, errW] = sys.pipe();
        fds.push(outW, errW);
        try {
          created = await createContainer(this.#runtimeId(p.namespace, p.id), {
            ...this.#runtime(),
            bundle,
            spec,
            stdio: [stdin, outW, errW],
          });
        } catch (err) {
          this.#closeQuietly(outR);
          this.#closeQuietly(errR);
          throw err;
        }
        live.outputs.stdout!.start(outR);
        live.outputs.stderr!.start(errR);
      }
      closeFds();
      live.record.pid = created.pid;
      this.#live.set(key, live);
      this.#byPid.set(created.pid, key);
      this.#save(live.record);
      this.#publish({ topic: "/tasks/create", namespace: p.namespace, id: p.id, pid: created.pid });
      if (p.rootfs.length && rootfsHeldByInit(spec)) {
        live.rootfsDetached = detachAllAsync(rootfs, { sys });
      }
    } catch (err) {
      closeFds();
      for (const u of undo.reverse()) {
        try {
          u();
        } catch {
          // best effort
        }
      }
      throw err;
    }
    // A failed start leaves the created container for the caller to delete.
    if (p.start) await this.start(p.namespace, p.id);
    return { pid: created.pid };
  }

  /** Adds the FIFOs of `p` to the container's output relays (none: output goes to the log only). */
  #attach(live: Live, p: StdioPaths): void {
    const opened: Partial<Record<"stdout" | "stderr", number>> = {};
    try {
      for (const stream of ["stdout", "stderr"] as const) {
        const path = p[stream];
        if (path && live.outputs[stream]) opened[stream] = openFifoWriter(this.#sys, path);
      }
    } catch (err) {
      for (const fd of Object.values(opened)) this.#closeQuietly(fd);
      throw err;
    }
    for (const stream of ["stdout", "stderr"] as const) {
      const fd = opened[stream];
      if (fd !== undefined) live.outputs[stream]!.addSink(fd);
    }
  }

  /**
   * The relay of a container's stdout or stderr (a pipe, or the pty master):
   * into the log, and the attached FIFO at the pace its reader takes it.
   */
  #output(live: Live, stream: "stdout" | "stderr"): Relay {
    return new Relay(this.#poller, this.#sys, PUMP_BUFFER, {
      tap: (chunk) => live.log?.write(stream, chunk),
      onEnd: () => {
        live.log?.flush(stream);
        // The relay closed the pty master: no resizes or stdin any more.
        if (stream === "stdout" && live.master !== undefined) {
          live.master = undefined;
          for (const relay of live.stdins.splice(0)) relay.close();
        }
      },
    });
  }

  /** Relays a client's stdin FIFO into a pty master (through an fd of its own), until the client closes it. */
  #stdinRelay(fifo: number, master: number): Relay {
    const relay = new Relay(this.#poller, this.#sys, PUMP_BUFFER);
    try {
      relay.addSink(dupCloexec(master));
    } catch (err) {
      relay.close();
      this.#closeQuietly(fifo);
      throw err;
    }
    relay.start(fifo);
    return relay;
  }

  /** Stops every relay of the container and its execs, closing their fds. */
  #closeRelays(live: Live): void {
    live.outputs.stdout?.close();
    live.outputs.stderr?.close();
    for (const relay of live.stdins.splice(0)) relay.close();
    live.master = undefined;
    for (const exec of live.execs.values()) {
      for (const relay of exec.relays) relay.close();
      exec.master = undefined;
    }
  }

  #closeQuietly(fd: number): void {
    try {
      this.#sys.close(fd);
    } catch {
      // closed already
    }
  }

  /** Lets a created container's process run. */
  async start(namespace: string, id: string): Promise<void> {
    trace("shim start: in");
    const live = this.#get(namespace, id);
    if (live.record.status !== "created") {
      throw new FailedPrecondition(
        `Cannot start container ${JSON.stringify(id)}: it is ${live.record.status}`,
      );
    }
    await startContainer(this.#runtimeId(namespace, id), this.#runtime());
    live.record.status = "running";
    trace("shim start: started");
    this.#save(live.record);
    this.#publish({ topic: "/tasks/start", namespace, id, pid: live.record.pid });
  }

  /** Sends a signal to the container's init (or every process with `all`), or to an exec'd process. */
  async kill(
    namespace: string,
    id: string,
    signal: number,
    options: { all?: boolean; execId?: string } = {},
  ): Promise<void> {
    const live = this.#get(namespace, id);
    if (options.execId) {
      const exec = live.execs.get(options.execId);
      if (!exec) {
        throw new NotFound(
          `Exec ${JSON.stringify(options.execId)} does not exist in container ${
            JSON.stringify(id)
          }`,
        );
      }
      if (exec.exit) {
        throw new FailedPrecondition(
          `Cannot kill exec ${JSON.stringify(options.execId)}: it has exited`,
        );
      }
      if (!exec.pid) {
        throw new FailedPrecondition(
          `Cannot kill exec ${JSON.stringify(options.execId)}: it is starting`,
        );
      }
      this.#sys.kill(exec.pid, signal);
      return;
    }
    if (live.record.status === "stopped") {
      throw new FailedPrecondition(
        `Cannot kill container ${JSON.stringify(id)}: it is not running`,
      );
    }
    await killContainer(this.#runtimeId(namespace, id), signal, {
      ...this.#runtime(),
      all: options.all === true,
    });
  }

  async pause(namespace: string, id: string): Promise<void> {
    const live = this.#get(namespace, id);
    await pauseContainer(this.#runtimeId(namespace, id), this.#runtime());
    live.record.status = "paused";
    this.#save(live.record);
    this.#publish({ topic: "/tasks/paused", namespace, id });
  }

  async resume(namespace: string, id: string): Promise<void> {
    const live = this.#get(namespace, id);
    await resumeContainer(this.#runtimeId(namespace, id), this.#runtime());
    live.record.status = "running";
    this.#save(live.record);
    this.#publish({ topic: "/tasks/resumed", namespace, id });
  }

  /** Pids of the container's processes. */
  ps(namespace: string, id: string): number[] {
    this.#get(namespace, id);
    return containerPids(this.#runtimeId(namespace, id), this.#runtime());
  }

  /** cgroup statistics of the container. */
  stats(namespace: string, id: string): unknown {
    this.#get(namespace, id);
    const { record } = inspect(this.#runtimeId(namespace, id), this.#runtime());
    return cgroupFor(record, this.#sys, this.#warn).stats();
  }

  /** Resizes the pty of the container (or of an exec). */
  resize(
    namespace: string,
    id: string,
    size: { rows: number; cols: number },
    execId?: string,
  ): void {
    const live = this.#get(namespace, id);
    const master = execId ? live.execs.get(execId)?.master : live.master;
    if (master === undefined) {
      throw new FailedPrecondition(
        `Cannot resize: ${
          execId ? `exec ${JSON.stringify(execId)}` : `container ${JSON.stringify(id)}`
        } has no terminal`,
      );
    }
    this.#sys.setWinsize(master, size);
  }

  /**
   * Attaches another client: its FIFOs get the container's output from now
   * on, beside those of clients attached before (and its stdin goes into
   * the terminal, with one).
   */
  attach(namespace: string, id: string, paths: StdioPaths): void {
    const live = this.#get(namespace, id);
    // An attach that can get nothing said so by hanging for ever, or by ending at once.
    if (live.record.status === "stopped") {
      throw new FailedPrecondition(
        `Cannot attach to container ${JSON.stringify(id)}: it is ${live.record.status}`,
      );
    }
    const outputs = [live.outputs.stdout, live.outputs.stderr].filter((r) => r && !r.closed);
    if (outputs.length === 0) {
      throw new FailedPrecondition(
        `Cannot attach to container ${
          JSON.stringify(id)
        }: its output is no longer captured (its shim was replaced); see its logs up to then`,
      );
    }
    this.#attach(live, paths);
    if (paths.stdin && live.master !== undefined) {
      live.stdins = live.stdins.filter((r) => !r.closed);
      const fifo = openFifoReader(this.#sys, paths.stdin, { blocking: false });
      live.stdins.push(this.#stdinRelay(fifo, live.master));
    }
  }

  /** Runs another process in the container. */
  async exec(
    namespace: string,
    id: string,
    p: { execId: string; process: Process } & StdioPaths,
  ): Promise<{ pid: number }> {
    const live = this.#get(namespace, id);
    const previous = live.execs.get(p.execId);
    if (previous && !previous.exit) {
      throw new AlreadyExists(
        `Exec ${JSON.stringify(p.execId)} is running already in container ${JSON.stringify(id)}`,
      );
    }
    if (live.record.status !== "running") {
      throw new FailedPrecondition(
        `Cannot exec in container ${JSON.stringify(id)}: it is ${live.record.status}`,
      );
    }
    // The id is taken before the first await: two execs of one id at once both ran, and the CLI of
    // one got the other's exit code (a helper's probes, 6 rounds in 30).
    const exec: Exec = { pid: 0, relays: [] };
    live.execs.delete(p.execId); // an exec id is free again once its process has exited
    live.execs.set(p.execId, exec);
    const { execInContainer } = await import("../runtime/exec.ts").catch((err) => {
      live.execs.delete(p.execId);
      throw err;
    });
    const sys = this.#sys;
    const opened: number[] = [];
    const open = (path: string | undefined, flags: number) => {
      const fd = path
        ? sys.open(path, flags | O_CLOEXEC)
        : sys.open("/dev/null", flags | O_CLOEXEC);
      opened.push(fd);
      return fd;
    };
    try {
      let pid: number;
      if (p.process.terminal) {
        const [ours, theirs] = sys.socketpair(SOCK_STREAM);
        opened.push(ours);
        const stdin = p.stdin ? openFifoReader(sys, p.stdin, { blocking: false }) : undefined;
        if (stdin !== undefined) opened.push(stdin);
        const stdout = p.stdout ? openFifoWriter(sys, p.stdout) : undefined;
        if (stdout !== undefined) opened.push(stdout);
        ({ pid } = await execInContainer(this.#runtimeId(namespace, id), {
          ...this.#runtime(),
          process: p.process,
          consoleSocketFd: theirs,
        }));
        const master = sys.recvFds(ours, 256).fds[0]!;
        exec.master = master;
        // The pty's output to the client's FIFO until the pty closes (its process and children are gone).
        const output = new Relay(this.#poller, sys, PUMP_BUFFER, {
          onEnd: () => {
            exec.master = undefined;
            for (const relay of exec.relays) relay.close();
          },
        });
        exec.relays.push(output);
        if (stdout !== undefined) {
          opened.splice(opened.indexOf(stdout), 1);
          output.addSink(stdout);
        }
        output.start(master);
        if (stdin !== undefined) {
          opened.splice(opened.indexOf(stdin), 1);
          exec.relays.push(this.#stdinRelay(stdin, master));
        }
      } else {
        // stdin is the client's FIFO itself (blocking; opened without waiting for a writer) or
        // /dev/null. Output goes through pipes and relays to the client's FIFOs: a client that goes
        // away is dropped and the process goes on (its output discarded, as Docker does), where a
        // FIFO of its own that nobody read stopped it for good once full.
        const stdin = p.stdin
          ? openFifoReader(sys, p.stdin, { blocking: true })
          : sys.open("/dev/null", O_RDONLY | O_CLOEXEC);
        opened.push(stdin);
        const pending: { read: number; sink: number }[] = [];
        const output = (path: string | undefined) => {
          if (!path) return open(undefined, O_WRONLY);
          const sink = openFifoWriter(sys, path);
          opened.push(sink);
          const [read, write] = sys.pipe();
          opened.push(read, write);
          pending.push({ read, sink });
          return write;
        };
        const stdout = output(p.stdout);
        const stderr = output(p.stderr);
        ({ pid } = await execInContainer(this.#runtimeId(namespace, id), {
          ...this.#runtime(),
          process: p.process,
          stdio: [stdin, stdout, stderr],
        }));
        for (const { read, sink } of pending) {
          opened.splice(opened.indexOf(read), 1);
          opened.splice(opened.indexOf(sink), 1);
          const relay = new Relay(this.#poller, sys, PUMP_BUFFER);
          relay.addSink(sink);
          relay.start(read);
          exec.relays.push(relay);
        }
      }
      exec.pid = pid;
      this.#forgetOldExecs(live);
      this.#reaper.wait(pid).then((status) => {
        exec.exit = { exitCode: exitCodeOf(status), exitedAt: new Date().toISOString() };
        this.#publish({
          topic: "/tasks/exit",
          namespace,
          id,
          execId: p.execId,
          pid,
          exitCode: exec.exit.exitCode,
          exitedAt: exec.exit.exitedAt,
        });
      });
      this.#publish({ topic: "/tasks/exec-started", namespace, id, execId: p.execId, pid });
      return { pid };
    } catch (err) {
      if (live.execs.get(p.execId) === exec) live.execs.delete(p.execId);
      for (const relay of exec.relays) relay.close();
      throw err;
    } finally {
      opened.forEach((fd) => this.#closeQuietly(fd));
    }
  }

  /** Keeps the exit statuses of the last {@link KEPT_EXECS} execs that exited; older ones are forgotten. */
  #forgetOldExecs(live: Live): void {
    let exited = 0;
    for (const [execId, exec] of [...live.execs].reverse()) {
      if (exec.exit !== undefined && ++exited > KEPT_EXECS) live.execs.delete(execId);
    }
  }

  /** Waits for the container's (or an exec's) exit. */
  async wait(namespace: string, id: string, execId?: string): Promise<ExitStatus> {
    const live = this.#get(namespace, id);
    if (execId) {
      const exec = live.execs.get(execId);
      if (!exec) {
        throw new NotFound(
          `Exec ${JSON.stringify(execId)} does not exist in container ${JSON.stringify(id)}`,
        );
      }
      if (exec.exit) return exec.exit;
      if (!exec.pid) {
        throw new FailedPrecondition(
          `Cannot wait for exec ${JSON.stringify(execId)}: it is starting`,
        );
      }
      const status = await this.#reaper.wait(exec.pid).catch(() => 255);
      return exec.exit ?? { exitCode: exitCodeOf(status), exitedAt: new Date().toISOString() };
    }
    return live.record.exit ?? (await live.exited);
  }

  /** The state of every container the shim holds. */
  list(): ContainerRecord[] {
    return [...this.#live.values()].map((l) => ({ ...l.record }));
  }

  /** One container's state. */
  state(namespace: string, id: string): ContainerRecord {
    return { ...this.#get(namespace, id).record };
  }

  /** Removes a stopped (or, with force, any) container: runtime state, cgroup, rootfs mount, bundle. */
  async delete(
    namespace: string,
    id: string,
    options: { force?: boolean } = {},
  ): Promise<ExitStatus | undefined> {
    const live = this.#get(namespace, id);
    trace("shim delete: in");
    if (live.record.status !== "stopped" && live.record.status !== "created" && !options.force) {
      throw new FailedPrecondition(
        `Cannot delete the task of container ${
          JSON.stringify(id)
        }: it is ${live.record.status}; kill it first`,
      );
    }
    const runtimeId = this.#runtimeId(namespace, id);
    await deleteContainer(runtimeId, { ...this.#runtime(), force: true });
    trace("shim delete: runtime deleted");
    if (live.record.status !== "stopped") {
      await Promise.race([
        live.exited,
        new Promise((r) => setTimeout(r, 5000)),
      ]);
    }
    // What the container wrote before it exited is still read into the log and the attached FIFOs
    // (its last writers are gone, so the relays reach the end), for up to 2 s with a client that
    // reads slowly or not at all.
    const outputs = [live.outputs.stdout, live.outputs.stderr].filter((r) => r && !r.closed);
    if (outputs.length) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        Promise.all(outputs.map((r) => r!.ended)),
        new Promise((r) => (timer = setTimeout(r, DRAIN_MS))),
      ]);
      clearTimeout(timer);
    }
    this.#closeRelays(live);
    live.log?.close();
    const bundle = this.#bundle(namespace, id);
    await live.rootfsDetached;
    try {
      unmountAll(join(bundle, "rootfs"), { sys: this.#sys, detach: true });
    } catch {
      // not mounted
    }
    await Promise.all([
      Deno.remove(bundle, { recursive: true }).catch(() => {}),
      Deno.remove(this.#recordPath(namespace, id)).catch(() => {}),
    ]);
    trace("shim delete: bundle gone");
    this.#live.delete(this.#key(namespace, id));
    this.#byPid.delete(live.record.pid);
    this.#publish({ topic: "/tasks/delete", namespace, id, ...(live.record.exit ?? {}) });
    return live.record.exit;
  }

  /** Called by the reaper for every exit. */
  #onChildExit(pid: number, status: number): void {
    trace("shim exit: reaped");
    const key = this.#byPid.get(pid);
    if (!key) return; // an exec (waited for separately), a hook, or an orphan adopted as subreaper
    const live = this.#live.get(key)!;
    this.#recordExit(live, { exitCode: exitCodeOf(status), exitedAt: new Date().toISOString() });
  }

  #recordExit(live: Live, exit: ExitStatus): void {
    try {
      const { record } = inspect(
        this.#runtimeId(live.record.namespace, live.record.id),
        this.#runtime(),
      );
      if (cgroupFor(record, this.#sys, this.#warn).oomKillCount() > 0) exit.oomKilled = true;
    } catch {
      // no cgroup left to ask
    }
    live.record.status = "stopped";
    live.record.exit = exit;
    this.#save(live.record);
    const { namespace, id } = live.record;
    if (exit.oomKilled) this.#publish({ topic: "/tasks/oom", namespace, id });
    this.#publish({ topic: "/tasks/exit", namespace, id, pid: live.record.pid, ...exit });
    live.onExit(exit);
    trace("shim exit: recorded");
  }

  /**
   * Takes over the containers a previous shim of this group left: their records are on disk.
   * We are not their parent, so an exit is noticed by polling and its code is unknown.
   */
  #adopt(): void {
    let namespaces: Deno.DirEntry[];
    try {
      namespaces = [...Deno.readDirSync(join(this.#dir, "containers"))];
    } catch {
      return;
    }
    for (const ns of namespaces) {
      for (const f of Deno.readDirSync(join(this.#dir, "containers", ns.name))) {
        if (!f.name.endsWith(".json")) continue;
        let record: ContainerRecord;
        try {
          record = JSON.parse(
            Deno.readTextFileSync(join(this.#dir, "containers", ns.name, f.name)),
          );
        } catch {
          continue;
        }
        const live: Live = {
          record,
          outputs: {},
          stdins: [],
          execs: new Map(),
          exited: Promise.resolve(record.exit ?? { exitCode: 255, exitedAt: "", unknown: true }),
          onExit: () => {},
        };
        if (record.status !== "stopped") {
          live.exited = new Promise((resolve) => (live.onExit = resolve));
          this.#watchAdopted(live);
        }
        this.#live.set(this.#key(record.namespace, record.id), live);
      }
    }
  }

  #watchAdopted(live: Live): void {
    const timer = setInterval(() => {
      let alive = false;
      try {
        const { status } = inspect(
          this.#runtimeId(live.record.namespace, live.record.id),
          this.#runtime(),
        );
        alive = status !== "stopped";
      } catch {
        alive = false;
      }
      if (alive) return;
      clearInterval(timer);
      this.#recordExit(live, { exitCode: 255, exitedAt: new Date().toISOString(), unknown: true });
    }, 500);
  }

  /** Runtime-namespace hooks, forked and waited for through the reaper (no Deno.Command in a process that reaps). */
  async #runHooks(kind: string, hooks: readonly Hook[], state: State): Promise<void> {
    const sys = this.#sys;
    for (const hook of hooks) {
      const pid = forkHook(sys, hook, state);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = hook.timeout
        ? new Promise<"timeout">((
          r,
        ) => (timer = setTimeout(() => r("timeout"), hook.timeout! * 1000)))
        : new Promise<never>(() => {});
      const result = await Promise.race([this.#reaper.wait(pid), timeout]);
      if (timer !== undefined) clearTimeout(timer);
      if (result === "timeout") {
        sys.kill(pid, SIGNALS.SIGKILL!);
        await this.#reaper.wait(pid);
        throw new HookFailed(`${kind} hook ${hook.path} timed out after ${hook.timeout}s`);
      }
      const code = exitCodeOf(result);
      if (code !== 0) {
        throw new HookFailed(`${kind} hook ${hook.path} failed with exit code ${code}`);
      }
    }
  }

  /** Stops reaping and pumping (containers keep running). */
  close(): void {
    this.#reaper.stop();
    this.#poller.close();
  }
}

/**
 * Whether the host's mount of a container's rootfs can go as soon as its init
 * exists, so that delete has nothing left to unmount (each umount waits ~2 ms
 * for an RCU grace period, on the shim's only thread): the init made its own
 * mount namespace, whose copy of the rootfs stays until the container's last
 * process exits, and no poststart or poststop hook, which run on the host and
 * may look into the bundle, is set.
 */
export function rootfsHeldByInit(spec: Spec): boolean {
  const own = (spec.linux?.namespaces ?? []).some((n) => n.type === "mount" && !n.path);
  return own && !spec.hooks?.poststart?.length && !spec.hooks?.poststop?.length;
}

/** Resolves an image-style user string against the rootfs's /etc/passwd and /etc/group. */
export function resolveUser(rootfs: string, user: string): { uid: number; gid: number } {
  const [name, group] = user.split(":", 2) as [string, string | undefined];
  const read = (file: string) => {
    try {
      return Deno.readTextFileSync(join(rootfs, file)).split("\n").map((l) => l.split(":"));
    } catch {
      return [];
    }
  };
  let uid: number, gid: number;
  if (/^\d+$/.test(name)) {
    uid = Number(name);
    gid = Number(read("etc/passwd").find((f) => f[2] === name)?.[3] ?? 0);
  } else {
    const entry = read("etc/passwd").find((f) => f[0] === name);
    if (!entry) {
      throw new InvalidArgument(
        `Cannot resolve user ${JSON.stringify(name)}: no such user in the image's /etc/passwd`,
      );
    }
    uid = Number(entry[2]);
    gid = Number(entry[3]);
  }
  if (group !== undefined) {
    if (/^\d+$/.test(group)) gid = Number(group);
    else {
      const entry = read("etc/group").find((f) => f[0] === group);
      if (!entry) {
        throw new InvalidArgument(
          `Cannot resolve group ${JSON.stringify(group)}: no such group in the image's /etc/group`,
        );
      }
      gid = Number(entry[2]);
    }
  }
  return { uid, gid };
}
