/**
 * Helpers both cgroup managers share: writing a control file with an error
 * that names the resource, making and removing directory trees through the
 * Syscall seam, reading pids recursively, parsing stat files.
 *
 * @module
 */

import { FailedPrecondition, Internal, InvalidArgument, NotFound } from "../../errors.ts";
import { SyscallError } from "../../ffi/syscall.ts";
import type { Syscall } from "../../ffi/syscall.ts";
import type { ResolvedPaths } from "./paths.ts";
import type { CgroupLayout, CgroupManager } from "./types.ts";

/** What a manager needs besides its paths. */
export interface ManagerOptions {
  sys: Syscall;
  layout: CgroupLayout;
  paths: ResolvedPaths;
  /** Receives a message for each requested resource this host cannot apply and that is skipped. */
  warn: (message: string) => void;
}

const decoder = new TextDecoder();

/** Blocks the calling thread for `ms` milliseconds (synchronous code only). */
export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** The errno name of a SyscallError, or undefined for any other value. */
export function errnoOf(err: unknown): string | undefined {
  return err instanceof SyscallError ? err.errnoName : undefined;
}

/** Reads a control file; undefined when it does not exist. */
export function readText(sys: Syscall, path: string): string | undefined {
  try {
    return decoder.decode(sys.readFile(path));
  } catch (err) {
    if (errnoOf(err) === "ENOENT" || errnoOf(err) === "ENODEV") return undefined;
    throw err;
  }
}

/** True when `path` exists (checked with stat through the seam). */
export function pathExists(sys: Syscall, path: string): boolean {
  try {
    sys.stat(path);
    return true;
  } catch (err) {
    if (errnoOf(err) === "ENOENT") return false;
    throw err;
  }
}

/**
 * The error for a control-file write the kernel refused, naming the resource
 * (`key`), the file, the value and the errno.
 */
export function limitError(key: string, path: string, value: string, err: unknown): Error {
  if (!(err instanceof SyscallError)) return err instanceof Error ? err : new Internal(String(err));
  const what = `Set ${key}: write ${JSON.stringify(value)} to ${path}: ${err.errnoName}`;
  switch (err.errnoName) {
    case "ENOENT":
      return new InvalidArgument(
        `${what} (no such control file: the controller is not enabled here, or this kernel lacks it)`,
        { cause: err },
      );
    case "EINVAL":
    case "ENODEV":
    case "ERANGE":
    case "EOVERFLOW":
      return new InvalidArgument(`${what} (the kernel refused the value)`, { cause: err });
    case "EBUSY":
    case "ENOSPC":
    case "EPERM":
    case "EACCES":
    case "EROFS":
      return new FailedPrecondition(what, { cause: err });
    default:
      return new Internal(what, { cause: err });
  }
}

/** Writes `value` to the control file `path`, throwing {@link limitError} on failure. */
export function writeLimit(sys: Syscall, key: string, path: string, value: string): void {
  try {
    sys.writeFile(path, value);
  } catch (err) {
    throw limitError(key, path, value, err);
  }
}

/**
 * Makes `dir` and its missing parents below `base` (which must exist),
 * appending each directory it made to `made`.
 */
export function mkdirAll(sys: Syscall, base: string, dir: string, made: string[]): void {
  if (dir !== base && !dir.startsWith(base + "/")) {
    throw new Internal(`Create cgroup ${dir}: not under ${base}`);
  }
  const parts = dir.slice(base.length).split("/").filter(Boolean);
  // A parent can vanish under us when another container's destroy() removes it as empty
  // (ENOENT): walk again from the top a few times.
  for (let attempt = 0;; attempt++) {
    let current = base;
    let vanished = false;
    for (const part of parts) {
      current = `${current}/${part}`;
      try {
        sys.mkdir(current, 0o755);
        made.push(current);
      } catch (err) {
        const errno = errnoOf(err);
        if (errno === "EEXIST") continue;
        if (errno === "ENOENT" && attempt < 5 && current !== `${base}/${parts[0]}`) {
          vanished = true;
          break;
        }
        throw new FailedPrecondition(`Create cgroup ${current}: ${errno ?? String(err)}`, {
          cause: err,
        });
      }
    }
    if (!vanished) return;
  }
}

/**
 * Removes the now-empty parents of `dir` that the cgroups path `inner` named
 * (`tug` of `tug/<id>`), deepest first, stopping at the first that is not
 * empty (the kernel refuses to remove a cgroup with children or processes).
 */
export function removeEmptyParents(sys: Syscall, dir: string, inner: string | undefined): void {
  if (!inner) return;
  let levels = inner.split("/").filter(Boolean).length - 1;
  let current = dir;
  while (levels-- > 0) {
    current = current.slice(0, current.lastIndexOf("/"));
    try {
      sys.rmdir(current);
    } catch {
      return; // in use by another container, or gone
    }
  }
}

/** Names of the subdirectories of `dir` (nested cgroups); empty when it cannot be listed. */
export function childDirs(dir: string): string[] {
  const names: string[] = [];
  try {
    for (const entry of Deno.readDirSync(dir)) if (entry.isDirectory) names.push(entry.name);
  } catch {
    // gone, or not a real directory (unit tests with a fake)
  }
  return names.sort();
}

/** How long {@link removeTree} keeps retrying a busy cgroup, milliseconds. */
const REMOVE_PATIENCE_MS = 2000;

/**
 * Removes the cgroup `dir` and every nested cgroup under it, deepest first.
 * A cgroup whose processes are still exiting is busy for a moment (EBUSY):
 * retries for up to two seconds. A directory that is already gone is fine.
 */
export function removeTree(sys: Syscall, dir: string): void {
  // Most cgroups have no children: the directory is listed only once an rmdir finds it busy.
  let listed = false;
  let wait = 5;
  let waited = 0;
  for (;;) {
    try {
      sys.rmdir(dir);
      return;
    } catch (err) {
      const errno = errnoOf(err);
      if (errno === "ENOENT") return;
      if (errno === "EBUSY" || errno === "ENOTEMPTY") {
        if (!listed) {
          listed = true;
          for (const child of childDirs(dir)) removeTree(sys, `${dir}/${child}`);
          continue;
        }
        if (waited < REMOVE_PATIENCE_MS) {
          sleepSync(wait);
          waited += wait;
          wait = Math.min(wait * 2, 200);
          continue;
        }
      }
      throw removeError(dir, err);
    }
  }
}

function removeError(dir: string, err: unknown): FailedPrecondition {
  const errno = errnoOf(err);
  return new FailedPrecondition(
    `Remove cgroup ${dir}: ${errno ?? String(err)}${
      errno === "EBUSY" ? " (processes are still in it)" : ""
    }`,
    { cause: err },
  );
}

/** Removes the directories in `made` (in creation order) deepest first; best effort. */
export function removeMade(sys: Syscall, made: readonly string[]): void {
  for (const dir of [...made].reverse()) {
    try {
      removeTree(sys, dir);
    } catch {
      // best effort: the caller reports the error that made it roll back
    }
  }
}

/** Parses the pids in a cgroup.procs file. */
export function parsePids(text: string | undefined): number[] {
  if (!text) return [];
  return text.split("\n").filter((l) => l.trim() !== "").map(Number);
}

/** Pids in `dir`'s cgroup.procs and in every nested cgroup's. */
export function pidsUnder(sys: Syscall, dir: string): number[] {
  const pids = parsePids(readText(sys, `${dir}/cgroup.procs`));
  for (const child of childDirs(dir)) pids.push(...pidsUnder(sys, `${dir}/${child}`));
  return pids;
}

/** Throws NotFound unless the cgroup directory exists. */
export function requireCgroup(sys: Syscall, dir: string): void {
  if (!pathExists(sys, dir)) throw new NotFound(`Find cgroup ${dir}: it does not exist`);
}

/** Parses "key value" lines (memory.stat, cpu.stat, memory.events) into numbers. */
export function parseFlatKeyed(text: string | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  if (!text) return out;
  for (const line of text.split("\n")) {
    const [key, value] = line.trim().split(/\s+/);
    if (key && value !== undefined && /^-?\d+$/.test(value)) out[key] = Number(value);
  }
  return out;
}

/** Parses a single-number control file; undefined for a missing file or "max". */
export function parseNumber(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const t = text.trim();
  return /^-?\d+$/.test(t) ? Number(t) : undefined;
}

/** A 64-bit integer as decimal text, exact even beyond 2^53. */
export function intText(n: number): string {
  return BigInt(n).toString();
}

/** A line of rdma.max: `mlx4_0 hca_handle=2 hca_object=2000`. */
export function rdmaLine(
  device: string,
  limits: { hcaHandles?: number; hcaObjects?: number },
): string {
  const parts = [device];
  if (limits.hcaHandles !== undefined) parts.push(`hca_handle=${limits.hcaHandles}`);
  if (limits.hcaObjects !== undefined) parts.push(`hca_object=${limits.hcaObjects}`);
  return parts.join(" ");
}

/**
 * Sends `signal` to every process of `cgroup`, frozen meanwhile when
 * `canFreeze` (and not frozen already), so that no process forks a new one
 * between listing and signalling. Processes gone meanwhile are skipped.
 */
export function signalProcesses(
  sys: Syscall,
  cgroup: Pick<CgroupManager, "frozen" | "freeze" | "thaw" | "pids">,
  signal: number,
  canFreeze: boolean,
): void {
  let froze = false;
  if (canFreeze && !cgroup.frozen()) {
    try {
      cgroup.freeze();
      froze = true;
    } catch {
      // signal without freezing
    }
  }
  try {
    for (const pid of cgroup.pids()) {
      try {
        sys.kill(pid, signal);
      } catch (err) {
        if (errnoOf(err) !== "ESRCH") throw err;
      }
    }
  } finally {
    if (froze) cgroup.thaw();
  }
}
