/**
 * Where `tug runtime` keeps its containers (`<root>/<id>/state.json`, the exec
 * fifo) and the lifecycle table: creating → created → running ↔ paused →
 * stopped. Every operation loads the record, refreshes the status from the
 * kernel, checks the transition, acts, then saves.
 *
 * @module
 */

import { dirname, join } from "../util/path.ts";
import { O_CLOEXEC, O_CREAT, O_RDWR } from "../ffi/constants.ts";
import { libcSyscall } from "../ffi/libc.ts";
import { type Syscall, SyscallError } from "../ffi/syscall.ts";
import { lockExclusive } from "./lock.ts";
import { existsNoFollow } from "./paths.ts";
import { AlreadyExists, FailedPrecondition, InvalidArgument, NotFound } from "../errors.ts";
import type { Hook, State, Status } from "./spec.ts";
import { OCI_VERSION } from "../version.ts";

/** What tug records about a container besides the OCI State. */
export interface ContainerRecord {
  id: string;
  bundle: string;
  /** Host pid of the container's init process (0 until it exists). */
  pid: number;
  /** The init's start time in clock ticks (field 22 of /proc/<pid>/stat), to detect pid reuse. */
  startTime: number;
  /** ISO 8601 creation time. */
  created: string;
  rootfs: string;
  /** Absolute cgroup directories by controller (or "unified"). */
  cgroupPaths: Record<string, string>;
  /** The spec's linux.cgroupsPath, when it set one (so delete knows which parents it may remove). */
  cgroupsPath?: string;
  annotations?: Record<string, string>;
  poststart?: Hook[];
  poststop?: Hook[];
  /** Set when the container was paused by us, so a thawed-by-others cgroup still reads as paused until resumed. */
  owner: number;
  /** Whether the process got a terminal. */
  terminal: boolean;
  /**
   * True when the container made its own PID namespace (absent in records of
   * older versions): without one, its other processes outlive its init.
   */
  ownPidNs?: boolean;
}

/** Default state directory, like runc's /run/runc. */
export const DEFAULT_ROOT = "/run/tug/runtime";

const ID_PATTERN = /^[\w+\-.]+$/;

/** Checks a container id the way runc does; throws InvalidArgument. */
export function validateId(id: string): void {
  if (!ID_PATTERN.test(id) || id === "." || id === ".." || id.length > 1024) {
    throw new InvalidArgument(
      `Invalid container id ${JSON.stringify(id)}: use letters, digits, and + - . _`,
    );
  }
}

/** The state directory of one container. */
export function containerDir(root: string, id: string): string {
  return join(root, id);
}

/** Path of the exec fifo `create` leaves and `start` opens. */
export function fifoPath(root: string, id: string): string {
  return join(root, id, "exec.fifo");
}

/** What a state directory (`--root`) that is a file, or under one, gives: an error that says so. */
function rootError(root: string, err: unknown): unknown {
  if (
    err instanceof Deno.errors.NotADirectory || err instanceof Deno.errors.AlreadyExists ||
    isErrno(err, "ENOTDIR")
  ) {
    return new InvalidArgument(
      `Cannot use the state directory ${root}: it, or a directory above it, is not a directory`,
      { cause: err },
    );
  }
  return err;
}

function makeRoot(root: string): void {
  try {
    Deno.mkdirSync(root, { recursive: true, mode: 0o711 });
  } catch (err) {
    throw rootError(root, err);
  }
}

/** Creates the container's directory; AlreadyExists when the id is taken. */
export function reserve(root: string, id: string): string {
  validateId(id);
  makeRoot(root);
  const dir = containerDir(root, id);
  try {
    Deno.mkdirSync(dir, { mode: 0o711 });
  } catch (err) {
    if (err instanceof Deno.errors.AlreadyExists) {
      throw new AlreadyExists(`Container ${JSON.stringify(id)} already exists`);
    }
    throw err;
  }
  return dir;
}

/** Where the locks of {@link lockContainer} live: "@" is not allowed in an id, so no container's directory has this name. */
const LOCKS = "@locks";

/** A lock taken with {@link lockContainer}. */
export interface ContainerLock {
  /** Lets the next operation on the container in; removes the lock file when the container is gone. */
  release(): void;
}

/**
 * Takes the lock of container `id`: an exclusive flock(2) on
 * `<root>/@locks/<id>`, waiting while another process (or another request of
 * this one) holds it. `create` holds it from before the container's
 * directory exists until its record is written (or, on failure, removed),
 * and `start`, `kill`, `pause`, `resume`, `delete` and an `exec`'s set-up
 * while they act, so that none of them sees another half done: a `delete`
 * waits for the `create` it races, two `start`s or `delete`s run one after
 * the other. `state`, `ps` and `list` only read, without it. The kernel releases it when
 * its holder dies: a container directory without a record whose lock is free
 * is what a killed `create` left.
 */
export async function lockContainer(
  root: string,
  id: string,
  options: { sys?: Syscall } = {},
): Promise<ContainerLock> {
  validateId(id);
  const sys = options.sys ?? libcSyscall();
  const path = join(root, LOCKS, id);
  const held = await lockExclusive(sys, path, () => {
    for (;;) {
      try {
        return sys.open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600);
      } catch (err) {
        if (!isErrno(err, "ENOENT")) throw rootError(root, err);
      }
      // No lock directory yet: make it.
      makeRoot(root);
      try {
        sys.mkdir(dirname(path), 0o700);
      } catch (err) {
        if (!isErrno(err, "EEXIST")) throw rootError(root, err);
      }
    }
  });
  return {
    release() {
      // Only a lock holder makes the container's directory: without one now, the container is gone,
      // and so goes its lock file. (The lock directory stays: the next create needs it.)
      if (!existsNoFollow(sys, containerDir(root, id))) {
        try {
          sys.unlink(path);
        } catch {
          // a lock file left is harmless: the next holder uses it
        }
      }
      held.release();
    },
  };
}

/** Runs `fn` holding the lock of container `id` (see {@link lockContainer}); releases it however `fn` ends. */
export async function withContainerLock<T>(
  root: string,
  id: string,
  options: { sys?: Syscall },
  fn: () => T | Promise<T>,
): Promise<T> {
  const lock = await lockContainer(root, id, options);
  try {
    return await fn();
  } finally {
    lock.release();
  }
}

function isErrno(err: unknown, name: string): boolean {
  return err instanceof SyscallError && err.errnoName === name;
}

/** The cgroup a create has made its own, written before its init joins it (file `cgroup.json`). */
export interface CreatingCgroup {
  cgroupPaths: Record<string, string>;
  cgroupsPath?: string;
}

/**
 * Where a create records its container's cgroup (a {@link CreatingCgroup}),
 * so that what a killed create left can be removed.
 */
export function creatingPath(root: string, id: string): string {
  return join(containerDir(root, id), "cgroup.json");
}

/** What a create recorded at {@link creatingPath}, if it did. */
export function loadCreating(root: string, id: string): CreatingCgroup | undefined {
  try {
    return JSON.parse(Deno.readTextFileSync(creatingPath(root, id)));
  } catch {
    return undefined;
  }
}

/** Writes state.json atomically. */
export function save(root: string, record: ContainerRecord): void {
  const dir = containerDir(root, record.id);
  const tmp = join(dir, "state.json.tmp");
  Deno.writeTextFileSync(tmp, JSON.stringify(record));
  Deno.renameSync(tmp, join(dir, "state.json"));
}

/** Loads a container's record; NotFound when there is none. */
export function load(root: string, id: string): ContainerRecord {
  validateId(id);
  let text: string;
  try {
    text = Deno.readTextFileSync(join(containerDir(root, id), "state.json"));
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new NotFound(`Container ${JSON.stringify(id)} does not exist`);
    }
    throw rootError(root, err);
  }
  return JSON.parse(text) as ContainerRecord;
}

/** Ids of every container under `root`. */
export function listIds(root: string): string[] {
  const ids: string[] = [];
  try {
    for (const e of Deno.readDirSync(root)) {
      if (e.isDirectory) {
        try {
          Deno.statSync(join(root, e.name, "state.json"));
          ids.push(e.name);
        } catch {
          // being created or deleted
        }
      }
    }
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw rootError(root, err);
  }
  return ids.sort();
}

/** Removes a container's directory (gone already is fine). */
export function remove(root: string, id: string): void {
  try {
    Deno.removeSync(containerDir(root, id), { recursive: true });
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
}

/** Start time (clock ticks since boot) and state letter of a process, or undefined when it does not exist. */
export function processStat(pid: number): { startTime: number; state: string } | undefined {
  if (pid <= 0) return undefined;
  let stat: string;
  try {
    stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  } catch {
    return undefined;
  }
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return { state: fields[0]!, startTime: Number(fields[19]) };
}

/** True while the record's init process is alive (not a zombie, not a reused pid). */
export function initAlive(record: ContainerRecord): boolean {
  const st = processStat(record.pid);
  return st !== undefined && st.startTime === record.startTime && st.state !== "Z" &&
    st.state !== "X";
}

/** The current status, from the kernel: is the init alive, is the fifo still there, is the cgroup frozen. */
export function currentStatus(
  root: string,
  record: ContainerRecord,
  frozen: () => boolean,
): Status {
  if (!initAlive(record)) return "stopped";
  try {
    Deno.statSync(fifoPath(root, record.id));
    return "created";
  } catch {
    // started
  }
  return frozen() ? "paused" : "running";
}

/** The OCI State for a record and status. */
export function ociState(record: ContainerRecord, status: Status): State {
  const state: State = { ociVersion: OCI_VERSION, id: record.id, status, bundle: record.bundle };
  if (status !== "stopped" && record.pid > 0) state.pid = record.pid;
  if (record.annotations && Object.keys(record.annotations).length) {
    state.annotations = record.annotations;
  }
  return state;
}

/** Operations whose legality depends on the status. */
export type Operation = "start" | "kill" | "pause" | "resume" | "delete" | "exec";

const ALLOWED: Record<Operation, readonly Status[]> = {
  start: ["created"],
  kill: ["created", "running", "paused"],
  pause: ["running"],
  resume: ["paused"],
  delete: ["stopped", "created"],
  exec: ["created", "running"],
};

/** Throws FailedPrecondition when `operation` is not allowed in `status`. */
export function checkTransition(id: string, status: Status, operation: Operation): void {
  if (ALLOWED[operation].includes(status)) return;
  const why: Record<Operation, string> = {
    start: status === "stopped" ? "it has stopped" : `it is ${status}, not created`,
    kill: "it is not running",
    pause: `it is ${status}, not running`,
    resume: `it is ${status}, not paused`,
    delete: `it is ${status}; stop it first or use --force`,
    exec: `it is ${status}`,
  };
  throw new FailedPrecondition(
    `Cannot ${operation} container ${JSON.stringify(id)}: ${why[operation]}`,
  );
}
