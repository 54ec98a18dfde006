/**
 * A process's stdio between the CLI and a container, as `ctr` does it: the
 * CLI makes FIFOs in a private temporary directory and names them in the
 * request; the shim opens them, so bytes go from the container to the
 * terminal without passing through the daemon.
 *
 * Order matters for FIFOs: the CLI holds a write end of each output FIFO
 * until the shim has opened its own (so its reader never blocks and never
 * sees an early end of file), and the write end of stdin from the start (so
 * the shim's open never blocks). Output ends when the shim closes its ends
 * (the process's output is drained); stdin ends when the CLI's own stdin
 * does.
 *
 * With a terminal (`-t`) the CLI's terminal goes raw; window size changes
 * are sent to the daemon; Ctrl-P Ctrl-Q detaches (as in Docker); Ctrl-C
 * reaches the container's foreground process through its terminal. Without
 * one, SIGINT, SIGTERM, SIGHUP and SIGQUIT are forwarded to the task.
 *
 * @module
 */

import { libcSyscall } from "../ffi/libc.ts";
import type { StdioRequest, TugClient } from "../mod.ts";
import { writeAll, type Writer } from "../util/bytes.ts";
import { join } from "../util/path.ts";

/** What {@link StdioSession.open} needs. */
export interface StdioOptions {
  /** The process's id (FIFO names). */
  id: string;
  /** Attach the CLI's stdin. */
  stdin: boolean;
  /** One merged output (a pty) instead of stdout and stderr. */
  terminal: boolean;
}

const DETACH = [0x10, 0x11]; // Ctrl-P Ctrl-Q

/** FIFOs and the pumps between them and the CLI's stdio. */
export class StdioSession {
  readonly request: StdioRequest;
  readonly #dir: string;
  readonly #terminal: boolean;
  readonly #keep: Deno.FsFile[] = [];
  readonly #readers: { file: Deno.FsFile; out: Writer }[] = [];
  #stdin: Deno.FsFile | undefined;
  #raw = false;
  #detached!: () => void;
  /** Resolves when the user detaches (Ctrl-P Ctrl-Q). */
  readonly detached: Promise<void> = new Promise((r) => (this.#detached = r));

  private constructor(dir: string, request: StdioRequest, terminal: boolean) {
    this.#dir = dir;
    this.request = request;
    this.#terminal = terminal;
  }

  /** Makes the FIFOs and opens the CLI's ends; call before the request that names them. */
  static async open(options: StdioOptions): Promise<StdioSession> {
    // Synchronous calls: none of them blocks (a FIFO opened with a writer of our own), and each
    // asynchronous one would cost a round trip through Deno's thread pool.
    const dir = Deno.makeTempDirSync({ prefix: "tug-fifo-" });
    const sys = libcSyscall();
    const request: StdioRequest = {};
    const streams = options.terminal ? ["stdout"] as const : ["stdout", "stderr"] as const;
    try {
      for (const s of [...(options.stdin ? ["stdin"] as const : []), ...streams]) {
        // The id only names the FIFO and is not validated yet (the daemon does that): keep it one short, safe name.
        const path = join(dir, `${options.id.replace(/[^A-Za-z0-9._-]/g, "_").slice(0, 128)}-${s}`);
        sys.mkfifo(path, 0o600);
        request[s] = path;
      }
    } catch (err) {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      throw err;
    }
    const session = new StdioSession(dir, request, options.terminal);
    try {
      for (const s of streams) {
        const path = request[s]!;
        // The write end first, so the read end opens at once.
        session.#keep.push(Deno.openSync(path, { read: true, write: true }));
        const file = Deno.openSync(path, { read: true });
        session.#readers.push({
          file,
          out: s === "stdout" ? Deno.stdout : Deno.stderr,
        });
      }
      if (request.stdin) {
        session.#stdin = Deno.openSync(request.stdin, { read: true, write: true });
      }
    } catch (err) {
      await session.close();
      throw err;
    }
    return session;
  }

  /**
   * Once the shim has opened its ends (the start or exec request returned):
   * drops the CLI's spare write ends, pumps output, relays stdin. Resolves
   * when all output has been written out.
   */
  pump(): Promise<void> {
    for (const f of this.#keep.splice(0)) f.close();
    const outputs = this.#readers.map(({ file, out }) => copy(file, out));
    if (this.#stdin) void this.#relayStdin(this.#stdin);
    return Promise.all(outputs).then(() => {});
  }

  async #relayStdin(fifo: Deno.FsFile): Promise<void> {
    if (this.#terminal && Deno.stdin.isTerminal()) {
      Deno.stdin.setRaw(true);
      this.#raw = true;
    }
    const buf = new Uint8Array(16 * 1024);
    let held = false; // a Ctrl-P at the end of the last read, not written yet: it may begin a detach
    try {
      for (;;) {
        const n = await Deno.stdin.read(buf);
        if (n === null) break;
        let chunk = buf.subarray(0, n);
        if (this.#raw) {
          if (held) {
            held = false;
            if (chunk[0] === DETACH[1]) {
              this.#detached();
              return;
            }
            await writeAll(fifo, new Uint8Array([DETACH[0]!]));
          }
          const at = detachAt(chunk);
          if (at >= 0) {
            if (at > 0) await writeAll(fifo, chunk.subarray(0, at));
            this.#detached();
            return;
          }
          if (chunk[chunk.length - 1] === DETACH[0]) {
            held = true;
            chunk = chunk.subarray(0, chunk.length - 1);
          }
        }
        if (chunk.length > 0) await writeAll(fifo, chunk);
      }
    } catch {
      // the container went away, or our stdin did
    } finally {
      this.restoreTerminal();
    }
    // End of our stdin: the container's stdin ends too.
    try {
      fifo.close();
    } catch {
      // closed already
    }
    this.#stdin = undefined;
  }

  /** Ends the attachment as Ctrl-P Ctrl-Q does (the process runs on). */
  detach(): void {
    this.#detached();
  }

  /** Gives the terminal back its normal mode. */
  restoreTerminal(): void {
    if (this.#raw) {
      try {
        Deno.stdin.setRaw(false);
      } catch {
        // not a terminal any more
      }
      this.#raw = false;
    }
  }

  /** Closes everything and removes the FIFOs. */
  async close(): Promise<void> {
    this.restoreTerminal();
    for (const f of [...this.#keep.splice(0), ...this.#readers.splice(0).map((r) => r.file)]) {
      try {
        f.close();
      } catch {
        // closed by its stream
      }
    }
    try {
      this.#stdin?.close();
    } catch {
      // closed already
    }
    await Deno.remove(this.#dir, { recursive: true }).catch(() => {});
  }
}

/** Where a Ctrl-P Ctrl-Q sequence starts in `chunk` (−1: none). */
export function detachAt(chunk: Uint8Array): number {
  for (let i = 0; i + 1 < chunk.length; i++) {
    if (chunk[i] === DETACH[0] && chunk[i + 1] === DETACH[1]) return i;
  }
  return -1;
}

/**
 * Copies a FIFO to our stdout or stderr until its end. Plain reads and
 * writes: the first use of Deno's streams (readable.pipeTo) costs a few
 * milliseconds of compiling, on the path of every `tug run`.
 */
async function copy(from: Deno.FsFile, to: Writer): Promise<void> {
  const buf = new Uint8Array(64 * 1024);
  try {
    for (;;) {
      const n = await from.read(buf);
      if (n === null) return;
      await writeAll(to, buf.subarray(0, n));
    }
  } catch {
    // the FIFO was closed under us (detach), or our output went away
  }
}

/** The size of the CLI's terminal, when it has one with a size. */
export function terminalSize(): { height: number; width: number } | undefined {
  try {
    if (!Deno.stdout.isTerminal()) return undefined;
    const { rows, columns } = Deno.consoleSize();
    return rows > 0 && columns > 0 ? { height: rows, width: columns } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Sends the terminal's size now and on every SIGWINCH; returns a function
 * that stops listening.
 */
export function forwardResize(
  client: TugClient,
  id: string,
  execId?: string,
): () => void {
  if (!Deno.stdout.isTerminal()) return () => {};
  const send = () => {
    const size = terminalSize();
    if (size) {
      client.tasks.resize(id, { rows: size.height, cols: size.width }, execId).catch(() => {});
    }
  };
  send();
  Deno.addSignalListener("SIGWINCH", send);
  return () => Deno.removeSignalListener("SIGWINCH", send);
}

const FORWARDED: Deno.Signal[] = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT"];

/** Forwards the CLI's signals to the task (or exec); returns a function that stops. */
export function forwardSignals(client: TugClient, id: string, execId?: string): () => void {
  const handlers = FORWARDED.map((signal) => {
    const h = () => {
      client.tasks.kill(id, { signal, ...(execId ? { execId } : {}) }).catch(() => {});
    };
    Deno.addSignalListener(signal, h);
    return [signal, h] as const;
  });
  return () => {
    for (const [s, h] of handlers) Deno.removeSignalListener(s, h);
  };
}
