/**
 * Small file-system questions shared across tug.
 *
 * @module
 */

/** True when `path` exists (symlinks followed); false for any error. */
export function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Takes an exclusive flock(2) on what `open()` opens at `path` and returns it
 * locked; closing it (or the process's end) releases the lock. Without a
 * holder this costs one syscall; with one, the wait runs on Deno's blocking
 * pool, never on the event loop, so another holder in this very process (a
 * shim's other request) goes on meanwhile. The holder before us may have
 * removed `path`, and someone made it again: then the one there now is
 * locked instead, so that every holder agrees on one file.
 */
export async function lockExclusive(path: string, open: () => Deno.FsFile): Promise<Deno.FsFile> {
  for (;;) {
    const file = open();
    try {
      if (!file.tryLockSync(true)) await file.lock(true);
      const held = file.statSync();
      const now = Deno.statSync(path);
      if (held.ino === now.ino && held.dev === now.dev) return file;
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) {
        file.close();
        throw err;
      }
    }
    file.close();
  }
}
