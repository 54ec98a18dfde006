/**
 * Exclusive flock(2) locks of `tug runtime`: a container's, held by the
 * commands that change it (runtime/state.ts lockContainer), and a cgroup's,
 * held by a create from its check that the cgroup is empty until its init is
 * in it (runtime/container.ts).
 *
 * @module
 */

import { LOCK_EX, LOCK_NB } from "../ffi/constants.ts";
import { type FileStat, type Syscall, SyscallError } from "../ffi/syscall.ts";

/** A lock taken with {@link lockExclusive}. */
export interface HeldLock {
  /** Closes the locked file, which releases the lock. */
  release(): void;
}

/**
 * Takes an exclusive flock on the file or directory that `open()` opens at
 * `path` (an fd). Without a holder this costs a few system calls; with one,
 * the wait runs on Deno's blocking pool, never on the event loop, so that a
 * holder in this very process (another request of a shim) goes on meanwhile.
 * The holder before us may have removed `path`, and someone made it again:
 * then the one there now is locked instead, so that every holder agrees on
 * one file. The kernel releases the lock when its holder dies.
 */
export async function lockExclusive(
  sys: Syscall,
  path: string,
  open: () => number,
): Promise<HeldLock> {
  for (;;) {
    const fd = open();
    let taken = false, current = false;
    try {
      sys.flock(fd, LOCK_EX | LOCK_NB);
      taken = true;
      current = sameFile(sys, path, sys.fstat(fd));
    } catch (err) {
      if (!(err instanceof SyscallError) || err.errnoName !== "EAGAIN") {
        sys.close(fd);
        throw err;
      }
    }
    if (current) return { release: () => sys.close(fd) };
    sys.close(fd);
    if (taken) continue;
    const waited = await waitFor(path);
    if (waited) return waited;
  }
}

/** Waits for the lock on `path` with Deno's own flock; undefined when `path` changed meanwhile (try again). */
async function waitFor(path: string): Promise<HeldLock | undefined> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
  try {
    await file.lock(true);
    const held = file.statSync();
    const now = Deno.statSync(path);
    if (held.ino === now.ino && held.dev === now.dev) return { release: () => file.close() };
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) {
      file.close();
      throw err;
    }
  }
  file.close();
  return undefined;
}

/** True when `path` is still the file `held` describes (its holder before us may have removed it). */
function sameFile(sys: Syscall, path: string, held: FileStat): boolean {
  try {
    const now = sys.stat(path);
    return now.ino === held.ino && now.devMajor === held.devMajor &&
      now.devMinor === held.devMinor;
  } catch (err) {
    if (err instanceof SyscallError && err.errnoName === "ENOENT") return false;
    throw err;
  }
}
