/**
 * Relaying a container's pty to our own terminal, for `tug runtime run` of a
 * process with `terminal: true` and no --console-socket (what runc does):
 * raw mode on our stdin, window size copied and kept in sync on SIGWINCH,
 * bytes pumped both ways until the container's side of the pty closes.
 *
 * @module
 */

import { readAsync, writeAllAsync } from "../ffi/async_io.ts";
import { libcSyscall } from "../ffi/libc.ts";

/** Starts relaying `master` ⇄ our stdio; the returned function waits for the output to drain and restores the terminal. */
export function relayTerminal(master: number): () => Promise<void> {
  const sys = libcSyscall();
  const isTty = Deno.stdin.isTerminal();
  const resize = () => {
    try {
      sys.setWinsize(master, sys.getWinsize(0));
    } catch {
      // stdin is not a terminal
    }
  };
  if (isTty) {
    Deno.stdin.setRaw(true);
    resize();
    Deno.addSignalListener("SIGWINCH", resize);
  }
  const output = (async () => {
    const buf = new Uint8Array(32 * 1024);
    for (;;) {
      const n = await readAsync(master, buf);
      if (n <= 0) break; // EIO once the last slave fd is closed
      await Deno.stdout.write(buf.subarray(0, n));
    }
  })();
  let stopped = false;
  (async () => {
    const buf = new Uint8Array(4096);
    while (!stopped) {
      const n = await Deno.stdin.read(buf).catch(() => null);
      if (n === null || stopped) break;
      if (!(await writeAllAsync(master, buf.subarray(0, n)))) break;
    }
  })();
  return async () => {
    stopped = true;
    await Promise.race([output, new Promise((r) => setTimeout(r, 2000))]);
    if (isTty) {
      Deno.removeSignalListener("SIGWINCH", resize);
      Deno.stdin.setRaw(false);
    }
    try {
      sys.close(master);
    } catch {
      // closed
    }
  };
}
