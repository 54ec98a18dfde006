/**
 * Containers and tasks, as the daemon serves them. A container is a metadata
 * record (image, snapshot, OCI spec, labels); its task is the running process,
 * held by the shim of the container's group. This service builds specs,
 * prepares snapshots, asks shims to create, start, signal, exec into and
 * delete tasks, keeps a table of task states fed by the shims' events, serves
 * logs from the log files, and applies restart policies.
 *
 * Usable without HTTP: the API routes forward to it.
 *
 * @module
 */

import { trace } from "../../trace.ts";
import {
  AlreadyExists,
  FailedPrecondition,
  InvalidArgument,
  NotFound,
  Unavailable,
} from "../../errors.ts";
import type { ImageService } from "../../images/service.ts";
import type { Container } from "../../images/metadata/containers.ts";
import type { Mount } from "../../images/types.ts";
import type { Process, Spec } from "../../runtime/spec.ts";
import { armCgroupAttach } from "../../runtime/cgroups/arm.ts";
import { parseSignal } from "../../runtime/signals.ts";
import { type LogEntry, readLogs, type ReadLogsOptions } from "../../shim/logs.ts";
import type { RpcClient, ShimEvent } from "../../shim/rpc.ts";
import type { ContainerRecord as ShimRecord, ExitStatus } from "../../shim/service.ts";
import { join } from "../../util/path.ts";
import type { ShimInfo } from "../../client/types.ts";
import type { EventBus } from "../events.ts";
import type { Config } from "../config.ts";
import type { Logger } from "../log.ts";
import { AUTOSTART_FILE } from "./plugin.ts";
import { buildSpec, type ContainerOptions, type RestartPolicy } from "./spec.ts";
import { ShimManager } from "./shims.ts";

/** Labels tug keeps on container records. */
export const LABELS = {
  user: "io.tug.user",
  restartPolicy: "io.tug.restart.policy",
  restartMax: "io.tug.restart.max-retries",
  restartCount: "io.tug.restart.count",
  stopped: "io.tug.restart.stopped",
  logMaxSize: "io.tug.log.max-size",
  logMaxFile: "io.tug.log.max-file",
  /** `run --rm`: the daemon removes the container once its task has exited, also after a restart. */
  remove: "io.tug.rm",
} as const;

export { parseRestart, type RestartPolicy } from "./spec.ts";

/** What `containers create` takes. */
export interface CreateContainerRequest extends ContainerOptions {
  id: string;
  image: string;
  labels?: Record<string, string>;
  restart?: RestartPolicy;
  logMaxSize?: number;
  logMaxFile?: number;
  snapshotter?: string;
}

/** A task with what only the daemon needs: its shim group, and whether it was sent SIGKILL. */
type Task = TaskInfo & { group: string; killed?: boolean };

/** A task that ran this long before it exited restarts after the shortest delay again. */
const RAN_OK_MS = 10_000;

/** How long deleting a task that was sent SIGKILL waits for its exit. */
const KILL_WAIT_MS = 5000;

/** A task's state as the daemon knows it. */
export interface TaskInfo {
  id: string;
  pid: number;
  status: "created" | "running" | "paused" | "stopped" | "unknown";
  exit?: ExitStatus;
}

/** A container with its task, for list and info. */
export interface ContainerInfo {
  id: string;
  image?: string;
  labels: Record<string, string>;
  createdAt: string;
  snapshotter?: string;
  snapshotKey?: string;
  spec?: Spec;
  task?: TaskInfo;
}

/** FIFO paths for a process's stdio. */
export interface StdioRequest {
  stdin?: string;
  stdout?: string;
  stderr?: string;
}

/** What `exec` takes. */
export interface ExecRequest extends StdioRequest {
  execId: string;
  args: string[];
  terminal?: boolean;
  cwd?: string;
  user?: string;
  env?: string[];
  /** The terminal's size at start (with `terminal`). */
  consoleSize?: { height: number; width: number };
}

/** Options of {@link ContainerService}. */
export interface ContainerServiceOptions {
  images: ImageService;
  events: EventBus;
  config: Config;
  log?: Logger;
}

function key(namespace: string, id: string): string {
  return `${namespace}/${id}`;
}

/** Containers and their tasks. */
export class ContainerService {
  readonly #images: ImageService;
  readonly #events: EventBus;
  readonly #config: Config;
  readonly #log: Logger | undefined;
  readonly shims: ShimManager;
  readonly #tasks = new Map<string, Task>();
  readonly #restartTimers = new Map<string, ReturnType<typeof setTimeout>>();
  /** When each task was last started (ms since the epoch), and how many exits in a row came within {@link RAN_OK_MS} of it. */
  readonly #startedAt = new Map<string, number>();
  readonly #quickExits = new Map<string, number>();
  /** The last queued start or removal of each container: they run one at a time, in order. */
  readonly #busy = new Map<string, Promise<unknown>>();
  #closed = false;

  constructor(options: ContainerServiceOptions) {
    this.#images = options.images;
    this.#events = options.events;
    this.#config = options.config;
    this.#log = options.log;
    this.shims = new ShimManager({
      state: options.config.state,
      groupLabel: options.config.shim.groupLabel,
      idleExit: options.config.shim.idleExit,
      onEvent: (e) => this.#onShimEvent(e),
      onLost: (group) => this.#onShimLost(group),
    });
  }

  /** How many tasks the service knows. */
  get taskCount(): number {
    return this.#tasks.size;
  }

  /**
   * Runs `fn` after the starts and removals of the container queued before
   * it. Two starts, or a start and a removal, of one container at once
   * lost track of a running task (the losing start removed the winner's
   * entry), or failed with errors of the half-removed other.
   */
  async #serial<T>(namespace: string, id: string, fn: () => Promise<T>): Promise<T> {
    const k = key(namespace, id);
    const run = (this.#busy.get(k) ?? Promise.resolve()).then(fn);
    const done = run.catch(() => {});
    this.#busy.set(k, done);
    try {
      return await run;
    } finally {
      if (this.#busy.get(k) === done) this.#busy.delete(k);
    }
  }

  #warn(message: string, err: unknown): void {
    if (this.#log) this.#log.warn(message, { error: String((err as Error)?.message ?? err) });
    else console.error(`tug: ${message}: ${(err as Error)?.message ?? err}`);
  }

  /** The shims the service is connected to, for `info`. */
  async shimInfo(): Promise<ShimInfo[]> {
    const out: ShimInfo[] = [];
    for (const group of await this.shims.connected()) {
      try {
        const shim = await this.shims.get(group);
        const p = await shim.call<{ pid: number; containers: number }>("ping", {});
        out.push({
          group,
          pid: p.pid,
          address: this.shims.socket(group),
          containers: p.containers,
        });
      } catch {
        // gone meanwhile
      }
    }
    return out;
  }

  get #db() {
    return this.#images.db;
  }

  #logPath(namespace: string, id: string): string {
    return join(this.#config.root, "logs", namespace, id, "container.log");
  }

  #record(namespace: string, id: string): Container {
    try {
      return this.#db.containers.get(namespace, id);
    } catch (err) {
      if (err instanceof NotFound) {
        throw new NotFound(
          `Container ${JSON.stringify(id)} does not exist in namespace ${
            JSON.stringify(namespace)
          }`,
        );
      }
      throw err;
    }
  }

  // ---------------------------------------------------------------- containers

  /** Creates a container record and its writable snapshot from an image. */
  async create(namespace: string, req: CreateContainerRequest): Promise<ContainerInfo> {
    trace("daemon create: in");
    // tug's own labels carry checked settings: set by a user they bypassed those checks (a 1-byte
    // log rotation size, a restart policy without --restart).
    for (const k of Object.keys(req.labels ?? {})) {
      if ((Object.values(LABELS) as string[]).includes(k)) {
        throw new InvalidArgument(
          `Invalid label ${
            JSON.stringify(k)
          }: tug sets it itself (see --restart, --log-opt, --user, --rm)`,
        );
      }
    }
    // A start usually follows (tug run): its shim then joins the init to its cgroup without waiting.
    void armCgroupAttach();
    const image = this.#images.get(req.image, { namespace });
    const config = await this.#images.config(image.name, { namespace });
    const { spec, user } = buildSpec(config, {
      ...req,
      namespace,
      cgroupParent: this.#config.containers.cgroupParent,
      seccompDefault: this.#config.containers.seccompDefault,
    });
    const labels: Record<string, string> = { ...(req.labels ?? {}), [LABELS.user]: user };
    if (req.restart && req.restart.name !== "no") {
      labels[LABELS.restartPolicy] = req.restart.name;
      if (req.restart.maxRetries !== undefined) {
        labels[LABELS.restartMax] = String(req.restart.maxRetries);
      }
    }
    if (req.logMaxSize !== undefined) labels[LABELS.logMaxSize] = String(req.logMaxSize);
    if (req.logMaxFile !== undefined) labels[LABELS.logMaxFile] = String(req.logMaxFile);
    const snapshotter = req.snapshotter ?? this.#images.defaultSnapshotter;
    let record: Container;
    try {
      record = this.#db.containers.create(namespace, {
        id: req.id,
        image: image.name,
        snapshotter,
        snapshotKey: req.id,
        spec,
        runtime: { name: "io.tug.runtime.v1" },
        labels,
      });
    } catch (err) {
      if (err instanceof AlreadyExists) {
        throw new AlreadyExists(
          `Container ${JSON.stringify(req.id)} already exists in namespace ${
            JSON.stringify(namespace)
          }`,
        );
      }
      throw err;
    }
    trace("daemon create: recorded");
    try {
      await this.#images.prepareRootfs(image.name, req.id, { namespace, snapshotter });
      trace("daemon create: prepared");
    } catch (err) {
      this.#db.containers.delete(namespace, req.id);
      throw err;
    }
    if (req.restart?.name === "always" || req.restart?.name === "unless-stopped") {
      this.#syncAutostart();
    }
    this.#events.publish(namespace, "/containers/create", { id: req.id, image: image.name });
    return this.#info(namespace, record, false);
  }

  #info(namespace: string, c: Container, withSpec: boolean): ContainerInfo {
    const info: ContainerInfo = {
      id: c.id,
      labels: c.labels,
      createdAt: c.createdAt.toISOString(),
    };
    if (c.image) info.image = c.image;
    if (c.snapshotter) info.snapshotter = c.snapshotter;
    if (c.snapshotKey) info.snapshotKey = c.snapshotKey;
    if (withSpec) info.spec = c.spec;
    const task = this.#tasks.get(key(namespace, c.id));
    if (task) {
      const { group: _g, killed: _k, ...rest } = task;
      info.task = rest;
    }
    return info;
  }

  /** Every container of the namespace, with its task's state. */
  list(namespace: string): ContainerInfo[] {
    return this.#db.containers.list(namespace).map((c) => this.#info(namespace, c, false));
  }

  /** One container, its spec included. */
  info(namespace: string, id: string): ContainerInfo {
    return this.#info(namespace, this.#record(namespace, id), true);
  }

  /**
   * Removes a container whose task is gone or stopped (any task with
   * `force`, killed first): its snapshot, its record and its logs.
   */
  delete(namespace: string, id: string, options: { force?: boolean } = {}): Promise<void> {
    return this.#serial(namespace, id, () => this.#delete(namespace, id, options));
  }

  async #delete(namespace: string, id: string, options: { force?: boolean }): Promise<void> {
    trace("daemon delete: in");
    const c = this.#record(namespace, id);
    const task = this.#tasks.get(key(namespace, id));
    if (task) {
      if (task.status !== "stopped" && !options.force) {
        throw new FailedPrecondition(
          `Cannot delete container ${
            JSON.stringify(id)
          }: its task is ${task.status}; kill it and delete the task first`,
        );
      }
      await this.#deleteTask(namespace, id, { force: options.force === true });
    }
    this.#cancelRestart(namespace, id);
    this.#startedAt.delete(key(namespace, id));
    this.#quickExits.delete(key(namespace, id));
    trace("daemon delete: task gone");
    // The logs go while the snapshot does (both on Deno's I/O threads).
    const logs = Deno.remove(join(this.#config.root, "logs", namespace, id), { recursive: true })
      .catch(() => {});
    try {
      if (c.snapshotter && c.snapshotKey) {
        const sn = this.#db.snapshotter(namespace, this.#images.snapshotter(c.snapshotter));
        await sn.remove(c.snapshotKey).catch((err) => {
          if (!(err instanceof NotFound)) throw err;
        });
      }
    } finally {
      await logs;
    }
    this.#db.containers.delete(namespace, id);
    if (c.labels[LABELS.restartPolicy]) this.#syncAutostart();
    trace("daemon delete: snapshot, logs and record gone");
    this.#events.publish(namespace, "/containers/delete", { id });
  }

  // ---------------------------------------------------------------- tasks

  #task(namespace: string, id: string): Task {
    this.#record(namespace, id);
    const t = this.#tasks.get(key(namespace, id));
    if (!t) throw new NotFound(`Container ${JSON.stringify(id)} has no task: start it first`);
    return t;
  }

  async #shim(namespace: string, id: string): Promise<RpcClient> {
    return await this.shims.get(this.#task(namespace, id).group);
  }

  /**
   * The mounts of a container's snapshot. A create cut short (the daemon
   * killed between the container's record and its snapshot, or between the
   * snapshot's record and its directory) left a container without one: what
   * is left of it is removed and the snapshot prepared from the container's
   * image now.
   */
  async #rootfs(
    namespace: string,
    c: Container,
    snapshotter: string,
    key: string,
  ): Promise<Mount[]> {
    const sn = this.#db.snapshotter(namespace, this.#images.snapshotter(snapshotter));
    try {
      return await sn.mounts(key);
    } catch (err) {
      if (!(err instanceof NotFound) || !c.image) throw err;
      this.#warn(`container ${c.id} has no snapshot ${key}; preparing it again`, err);
      await sn.remove(key).catch((e) => {
        if (!(e instanceof NotFound)) throw e;
      });
      return await this.#images.prepareRootfs(c.image, key, { namespace, snapshotter });
    }
  }

  /** Creates and starts the task of a container (its process), with its stdio on FIFOs when given. */
  /** Starts the container's task; a start by the user begins its restart count and delays anew (as Docker). */
  start(namespace: string, id: string, stdio: StdioRequest = {}): Promise<TaskInfo> {
    return this.#serial(namespace, id, () => {
      const c = this.#record(namespace, id);
      if (c.labels[LABELS.restartCount]) {
        this.#db.containers.update(namespace, {
          id,
          labels: { ...c.labels, [LABELS.restartCount]: "" },
        });
      }
      this.#quickExits.delete(key(namespace, id));
      return this.#start(namespace, id, stdio);
    });
  }

  async #start(namespace: string, id: string, stdio: StdioRequest): Promise<TaskInfo> {
    trace("daemon start: in");
    void armCgroupAttach();
    const c = this.#record(namespace, id);
    const existing = this.#tasks.get(key(namespace, id));
    if (existing) {
      if (existing.status !== "stopped") {
        throw new FailedPrecondition(
          `Cannot start container ${JSON.stringify(id)}: its task is ${existing.status}`,
        );
      }
      await this.#deleteTask(namespace, id, {});
    }
    if (!c.snapshotter || !c.snapshotKey) {
      throw new FailedPrecondition(
        `Cannot start container ${JSON.stringify(id)}: it has no snapshot`,
      );
    }
    const rootfs = await this.#rootfs(namespace, c, c.snapshotter, c.snapshotKey);
    const group = this.shims.group(namespace, c.labels);
    // The task is known before its shim is asked for: its group is not idle (see #releaseIfIdle).
    const task: Task = { id, pid: 0, status: "created", group };
    this.#tasks.set(key(namespace, id), task);
    let asked = false;
    try {
      const client = await this.shims.get(group);
      asked = true;
      const create = () =>
        client.call<{ pid: number }>("create", {
          namespace,
          id,
          spec: c.spec,
          rootfs,
          user: c.labels[LABELS.user],
          ...stdio,
          start: true,
          log: {
            path: this.#logPath(namespace, id),
            maxSize: Number(c.labels[LABELS.logMaxSize] ?? this.#config.logs.maxSize),
            maxFiles: Number(c.labels[LABELS.logMaxFile] ?? this.#config.logs.maxFile),
          },
        });
      const { pid } = await create().catch(async (err) => {
        // A shim that replaced a dead one adopted this container's record: if that task has
        // stopped, it is removed and the start goes on.
        if (!(err instanceof AlreadyExists)) throw err;
        const state = await client.call<ShimRecord>("state", { namespace, id }).catch(() => {
          throw err;
        });
        if (state.status !== "stopped") throw err;
        await client.call("delete", { namespace, id });
        return await create();
      });
      task.pid = pid;
      this.#startedAt.set(key(namespace, id), Date.now());
      // The exit of a short-lived process may have been reported already.
      if (task.status === "created") task.status = "running";
      trace("daemon start: started");
    } catch (err) {
      // A shim that died while creating the task may have saved its record first: the shim
      // that replaces it adopts the task, which nobody would then know of (what a shim killed
      // earlier in the create left, the new one removes when it starts).
      if (task.pid || (asked && err instanceof Unavailable)) {
        await this.shims.get(group).then((shim) =>
          shim.call("delete", { namespace, id, force: true })
        )
          .catch(() => {});
      }
      if (this.#tasks.get(key(namespace, id)) === task) this.#tasks.delete(key(namespace, id));
      this.#releaseIfIdle(group);
      throw err;
    }
    if (c.labels[LABELS.stopped]) {
      this.#db.containers.update(namespace, { id, labels: { ...c.labels, [LABELS.stopped]: "" } });
    }
    return { id, pid: task.pid, status: task.status };
  }

  /** Signals the task (or one of its execs). A user's kill also stops restart policies other than `always`. */
  async kill(
    namespace: string,
    id: string,
    signal: string | number,
    options: { all?: boolean; execId?: string } = {},
  ): Promise<void> {
    const sig = typeof signal === "number" ? signal : parseSignal(signal);
    const shim = await this.#shim(namespace, id);
    // A user's kill of a container waiting for its restart (a crash loop is stopped most of the
    // time, so kills were refused and the loop went on) cancels the restart, as `docker kill` does.
    const pending = !options.execId && this.#restartTimers.has(key(namespace, id));
    if (pending) this.#stopRestarting(namespace, id);
    try {
      await shim.call("kill", {
        namespace,
        id,
        signal: sig,
        all: options.all === true,
        ...(options.execId ? { execId: options.execId } : {}),
      });
    } catch (err) {
      if (pending && err instanceof FailedPrecondition) return; // stopped, and stays so
      throw err;
    }
    if (!options.execId) {
      if (sig === 9) this.#task(namespace, id).killed = true;
      this.#stopRestarting(namespace, id);
    }
  }

  /** A user stopped the container: its restart policy no longer applies (until a start). */
  #stopRestarting(namespace: string, id: string): void {
    const c = this.#record(namespace, id);
    this.#db.containers.update(namespace, {
      id,
      labels: { ...c.labels, [LABELS.stopped]: "true" },
    });
    this.#cancelRestart(namespace, id);
  }

  /**
   * Has the daemon remove the container once its task has exited (`run
   * --rm`), whoever waits for it: the label outlives a restart of the daemon.
   */
  removeOnExit(namespace: string, id: string): Promise<void> {
    return this.#serial(namespace, id, () => {
      const c = this.#record(namespace, id);
      this.#task(namespace, id);
      this.#db.containers.update(namespace, {
        id,
        labels: { ...c.labels, [LABELS.remove]: "true" },
      });
      return Promise.resolve();
    });
  }

  /** Removes a container marked by {@link removeOnExit} whose task has stopped; a warning if it cannot. */
  #autoRemove(namespace: string, id: string): void {
    this.delete(namespace, id).catch((err) => {
      if (!(err instanceof NotFound)) this.#warn(`cannot remove container ${id} (--rm)`, err);
    });
  }

  /** Waits for the task's (or an exec's) exit. */
  async wait(namespace: string, id: string, execId?: string): Promise<ExitStatus> {
    trace("daemon wait: in");
    const task = this.#task(namespace, id);
    if (!execId && task.status === "stopped" && task.exit) return task.exit;
    const shim = await this.shims.get(task.group);
    return await shim.call<ExitStatus>("wait", { namespace, id, ...(execId ? { execId } : {}) });
  }

  /** Runs another process in the running task. */
  async exec(namespace: string, id: string, req: ExecRequest): Promise<{ pid: number }> {
    if (!req.args.length) throw new InvalidArgument("exec needs a command");
    const c = this.#record(namespace, id);
    const base = c.spec.process!;
    const process: Process = {
      ...base,
      args: req.args,
      terminal: req.terminal === true,
      cwd: req.cwd ?? base.cwd,
      env: [...(base.env ?? []), ...(req.env ?? [])],
    };
    delete process.consoleSize;
    if (req.terminal && req.consoleSize) process.consoleSize = req.consoleSize;
    if (req.user !== undefined) {
      const m = /^(\d+)(?::(\d+))?$/.exec(req.user);
      if (!m) {
        throw new InvalidArgument(
          `Invalid --user ${JSON.stringify(req.user)} for exec: use UID[:GID]`,
        );
      }
      process.user = { uid: Number(m[1]), gid: Number(m[2] ?? m[1]) };
    }
    const shim = await this.#shim(namespace, id);
    return await shim.call<{ pid: number }>("exec", {
      namespace,
      id,
      execId: req.execId,
      process,
      ...(req.stdin ? { stdin: req.stdin } : {}),
      ...(req.stdout ? { stdout: req.stdout } : {}),
      ...(req.stderr ? { stderr: req.stderr } : {}),
    });
  }

  async ps(namespace: string, id: string): Promise<number[]> {
    return await (await this.#shim(namespace, id)).call<number[]>("ps", { namespace, id });
  }

  async pause(namespace: string, id: string): Promise<void> {
    await (await this.#shim(namespace, id)).call("pause", { namespace, id });
    this.#task(namespace, id).status = "paused";
  }

  async resume(namespace: string, id: string): Promise<void> {
    await (await this.#shim(namespace, id)).call("resume", { namespace, id });
    this.#task(namespace, id).status = "running";
  }

  /** cgroup statistics of the task. */
  async metrics(namespace: string, id: string): Promise<unknown> {
    return await (await this.#shim(namespace, id)).call("stats", { namespace, id });
  }

  async resize(
    namespace: string,
    id: string,
    size: { rows: number; cols: number },
    execId?: string,
  ): Promise<void> {
    await (await this.#shim(namespace, id)).call("resize", {
      namespace,
      id,
      ...size,
      ...(execId ? { execId } : {}),
    });
  }

  async attach(namespace: string, id: string, stdio: StdioRequest): Promise<void> {
    await (await this.#shim(namespace, id)).call("attach", { namespace, id, ...stdio });
  }

  /** Removes a stopped task; returns its exit status. */
  deleteTask(
    namespace: string,
    id: string,
    options: { force?: boolean } = {},
  ): Promise<ExitStatus | undefined> {
    return this.#serial(namespace, id, async () => {
      const exit = await this.#deleteTask(namespace, id, options);
      // A user's removal of the task: a pending restart would bring it back.
      if (this.#restartTimers.has(key(namespace, id))) this.#stopRestarting(namespace, id);
      return exit;
    });
  }

  async #deleteTask(
    namespace: string,
    id: string,
    options: { force?: boolean },
  ): Promise<ExitStatus | undefined> {
    const task = this.#task(namespace, id);
    if (task.status !== "stopped" && !options.force && task.killed) {
      // SIGKILLed and not reported yet: its exit is a moment away, as `ctr tasks delete` expects.
      await Promise.race([
        this.wait(namespace, id).catch(() => {}),
        new Promise((r) => setTimeout(r, KILL_WAIT_MS)),
      ]);
    }
    if (task.status !== "stopped" && !options.force) {
      throw new FailedPrecondition(
        `Cannot delete the task of container ${
          JSON.stringify(id)
        }: it is ${task.status}; kill it first`,
      );
    }
    const shim = await this.shims.get(task.group);
    const exit = await shim.call<ExitStatus | undefined>("delete", {
      namespace,
      id,
      ...(options.force ? { force: true } : {}),
    })
      .catch((err) => {
        if (err instanceof NotFound) return task.exit;
        throw err;
      });
    this.#tasks.delete(key(namespace, id));
    this.#releaseIfIdle(task.group);
    return exit ?? task.exit;
  }

  /**
   * Lets the shim of `group` go once the daemon knows no task of it: the
   * daemon's connection was what kept an empty shim from exiting after
   * `shim.idle_exit` (35 empty shims, ~50 MiB each, after a helper's probes).
   * The next start in the group connects again, or starts a new shim.
   */
  #releaseIfIdle(group: string): void {
    for (const t of this.#tasks.values()) if (t.group === group) return;
    this.shims.release(group);
  }

  /** Tasks of the namespace. */
  tasks(namespace: string): TaskInfo[] {
    const out: TaskInfo[] = [];
    for (const [k, t] of this.#tasks) {
      if (k.startsWith(`${namespace}/`)) {
        const { group: _g, killed: _k, ...rest } = t;
        out.push(rest);
      }
    }
    return out;
  }

  /** Every running task, for metrics: namespace, id and statistics. */
  async allMetrics(): Promise<{ namespace: string; id: string; stats: unknown }[]> {
    const out: { namespace: string; id: string; stats: unknown }[] = [];
    for (const [k, t] of this.#tasks) {
      if (t.status !== "running" && t.status !== "paused") continue;
      const [namespace, id] = k.split("/", 2) as [string, string];
      try {
        out.push({ namespace, id, stats: await this.metrics(namespace, id) });
      } catch {
        // exited meanwhile
      }
    }
    return out;
  }

  /** A container's log entries (following until its task stops, with `follow`). */
  logs(
    namespace: string,
    id: string,
    options: Omit<ReadLogsOptions, "done"> = {},
  ): AsyncGenerator<LogEntry> {
    this.#record(namespace, id);
    const done = () => {
      const t = this.#tasks.get(key(namespace, id));
      return !t || t.status === "stopped";
    };
    return readLogs(this.#logPath(namespace, id), { ...options, done });
  }

  // ---------------------------------------------------------------- events, recovery, restart

  #onShimEvent(e: ShimEvent): void {
    const { topic, namespace, id, ...payload } = e;
    this.#events.publish(namespace, topic, { id, ...payload });
    const t = this.#tasks.get(key(namespace, id));
    if (topic === "/tasks/exit" && !payload.execId) {
      const exit: ExitStatus = {
        exitCode: Number(payload.exitCode),
        exitedAt: String(payload.exitedAt),
        ...(payload.oomKilled ? { oomKilled: true } : {}),
        ...(payload.unknown ? { unknown: true } : {}),
      };
      if (t) {
        t.status = "stopped";
        t.exit = exit;
      }
      if (this.#labels(namespace, id)?.[LABELS.remove] && !this.#closed) {
        this.#autoRemove(namespace, id);
      } else this.#maybeRestart(namespace, id, exit);
    }
  }

  /**
   * A shim died with tasks of the daemon's: a new one is started at once
   * and adopts their records, so that exits are learnt now (the tasks were
   * reported running until some request happened to start it again).
   */
  #onShimLost(group: string): void {
    if (this.#closed) return;
    let has = false;
    for (const t of this.#tasks.values()) if (t.group === group) has = true;
    if (!has) return;
    this.#log?.warn("a shim went away; starting a new one for its containers", { group });
    setTimeout(async () => {
      if (this.#closed) return;
      try {
        const shim = await this.shims.get(group);
        for (const r of await shim.call<ShimRecord[]>("list", {})) {
          const t = this.#tasks.get(key(r.namespace, r.id));
          if (!t || t.group !== group || t.status === "stopped") continue;
          t.status = r.status;
          if (r.exit) t.exit = r.exit;
          if (r.status === "stopped" && r.exit) {
            this.#onShimEvent({
              topic: "/tasks/exit",
              namespace: r.namespace,
              id: r.id,
              pid: r.pid,
              exitCode: r.exit.exitCode,
              exitedAt: r.exit.exitedAt,
              ...(r.exit.unknown ? { unknown: true } : {}),
            });
          }
        }
      } catch (err) {
        this.#warn(`cannot start a new shim for group ${group}`, err);
      }
    }, 100);
  }

  /** A container's labels, or undefined when it does not exist (any more). */
  #labels(namespace: string, id: string): Record<string, string> | undefined {
    try {
      return this.#db.containers.get(namespace, id).labels;
    } catch {
      return undefined;
    }
  }

  /**
   * After a (re)start of the daemon: reconnects to the shims, learns their
   * tasks, removes the `--rm` containers whose task has stopped meanwhile,
   * starts what restart policies want running.
   */
  async recover(): Promise<void> {
    for (const group of await this.shims.reconnectAll()) {
      const shim = await this.shims.get(group);
      for (const r of await shim.call<ShimRecord[]>("list", {})) {
        const task: Task = {
          id: r.id,
          pid: r.pid,
          status: r.status,
          group,
        };
        if (r.exit) task.exit = r.exit;
        this.#tasks.set(key(r.namespace, r.id), task);
      }
      this.#releaseIfIdle(group);
    }
    for (const ns of this.#db.namespaces.list()) {
      for (const c of this.#db.containers.list(ns.name)) {
        const t = this.#tasks.get(key(ns.name, c.id));
        if (c.labels[LABELS.remove] && (!t || t.status === "stopped")) {
          this.#autoRemove(ns.name, c.id);
        } else if (
          c.labels[LABELS.restartPolicy] === "on-failure" && t?.status === "stopped" && t.exit
        ) {
          // Failed while the daemon was down (or waited out its delay then): as dockerd's restore.
          this.#maybeRestart(ns.name, c.id, t.exit);
        }
      }
    }
    for (const [namespace, c] of this.#syncAutostart()) {
      const policy = c.labels[LABELS.restartPolicy];
      if (policy === "unless-stopped" && c.labels[LABELS.stopped]) continue;
      const t = this.#tasks.get(key(namespace, c.id));
      if (t && t.status !== "stopped") continue;
      this.start(namespace, c.id).catch((err) =>
        this.#warn(`cannot restart container ${c.id}`, err)
      );
    }
  }

  /**
   * Rewrites `<root>/autostart`, the list of containers whose restart policy
   * starts them with the daemon: the containers plugin opens this service
   * at daemon start only when that file or a running shim says there is
   * something to do. Returns those containers.
   */
  #syncAutostart(): [string, Container][] {
    const out: [string, Container][] = [];
    for (const ns of this.#db.namespaces.list()) {
      for (const c of this.#db.containers.list(ns.name)) {
        const policy = c.labels[LABELS.restartPolicy];
        if (policy === "always" || policy === "unless-stopped") out.push([ns.name, c]);
      }
    }
    const path = join(this.#config.root, AUTOSTART_FILE);
    try {
      if (out.length) {
        Deno.writeTextFileSync(`${path}.tmp`, out.map(([ns, c]) => `${ns}/${c.id}\n`).join(""));
        Deno.renameSync(`${path}.tmp`, path);
      } else Deno.removeSync(path);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) {
        this.#warn("cannot write the autostart list", err);
      }
    }
    return out;
  }

  #cancelRestart(namespace: string, id: string): void {
    const timer = this.#restartTimers.get(key(namespace, id));
    if (timer !== undefined) clearTimeout(timer);
    this.#restartTimers.delete(key(namespace, id));
  }

  #maybeRestart(namespace: string, id: string, exit: ExitStatus): void {
    if (this.#closed) return;
    let c: Container;
    try {
      c = this.#db.containers.get(namespace, id);
    } catch {
      return;
    }
    const policy = c.labels[LABELS.restartPolicy];
    if (!policy || c.labels[LABELS.stopped] === "true") return;
    if (policy === "on-failure" && exit.exitCode === 0) return;
    const count = Number(c.labels[LABELS.restartCount] ?? 0);
    const max = c.labels[LABELS.restartMax];
    if (policy === "on-failure" && max !== undefined && count >= Number(max)) return;
    // The delay doubles with each exit that came soon after its start, and begins again once a
    // task has run for RAN_OK_MS (Docker's rule): it grew with the restart count for ever before.
    const k = key(namespace, id);
    const ran = Date.parse(exit.exitedAt) - (this.#startedAt.get(k) ?? 0);
    const quick = ran >= RAN_OK_MS ? 0 : (this.#quickExits.get(k) ?? -1) + 1;
    this.#quickExits.set(k, quick);
    const delay = Math.min(
      this.#config.containers.restartDelay * 2 ** Math.min(quick, 20),
      this.#config.containers.restartDelayMax,
    );
    this.#cancelRestart(namespace, id);
    this.#restartTimers.set(
      key(namespace, id),
      setTimeout(async () => {
        this.#restartTimers.delete(key(namespace, id));
        try {
          // In turn with removals: a removal queued first leaves nothing to start, one queued
          // after waits for this start and then kills what it started.
          const restarted = await this.#serial(namespace, id, async () => {
            if (this.#closed) return false;
            const fresh = this.#db.containers.get(namespace, id);
            if (fresh.labels[LABELS.stopped] === "true") return false;
            this.#db.containers.update(namespace, {
              id,
              labels: { ...fresh.labels, [LABELS.restartCount]: String(count + 1) },
            });
            await this.#start(namespace, id, {});
            return true;
          });
          if (restarted) {
            this.#events.publish(namespace, "/tasks/restart", { id, count: count + 1 });
          }
        } catch (err) {
          if (err instanceof NotFound) return; // removed meanwhile
          this.#warn(`restart of container ${id} failed`, err);
        }
      }, delay),
    );
  }

  /** Stops restarting and disconnects from the shims (containers keep running). */
  async close(): Promise<void> {
    this.#closed = true;
    for (const t of this.#restartTimers.values()) clearTimeout(t);
    this.#restartTimers.clear();
    await this.shims.close();
  }
}
