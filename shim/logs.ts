/**
 * Container logs: the shim writes every line a container prints to a log
 * file, one JSON object per line as Docker's json-file driver does
 * (`{"log":"hello\n","stream":"stdout","time":"2026-01-02T03:04:05.678901234Z"}`),
 * rotating by size (`<file>.1` … `<file>.<max-file − 1>`). The daemon reads
 * the same files for `tug containers logs [-f] [--tail N] [--since T]`.
 *
 * @module
 */

import { concat } from "../util/bytes.ts";

/** One line of a container's output. */
export interface LogEntry {
  /** The text, with its trailing newline when the line was complete. */
  log: string;
  stream: "stdout" | "stderr";
  /** RFC 3339 with nanoseconds. */
  time: string;
}

/** Rotation settings. */
export interface LogOptions {
  /** Bytes before the file is rotated (0: never). */
  maxSize: number;
  /** Files kept, the live one included (≥ 1). */
  maxFiles: number;
}

/** Parses a size like `10m`, `512k`, `1g` or `1048576` into bytes; throws on garbage. */
export function parseSize(value: string): number {
  const m = /^(\d+)([kmg]?)b?$/i.exec(value.trim());
  if (!m) {
    throw new Error(
      `invalid size ${JSON.stringify(value)}: use a number with an optional k, m or g`,
    );
  }
  const unit =
    { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2]!.toLowerCase() as "" | "k" | "m" | "g"];
  return Number(m[1]) * unit;
}

/**
 * Nanosecond timestamps in RFC 3339 for log lines: the wall clock once per
 * chunk read, then one nanosecond more for each further line, so that lines
 * stay in order and a chunk of thousands of lines costs one clock reading
 * (each line formatted from scratch held the shim to ~18 MB/s of short lines).
 */
class LineClock {
  /** Whole seconds since the epoch, and nanoseconds within that second. */
  #secs = 0;
  #nanos = -1;
  /** `YYYY-MM-DDTHH:MM:SS` of #secs. */
  #prefix = "";

  /** Moves to the wall clock's now (never backwards); returns the stamp. */
  now(): string {
    const ms = performance.timeOrigin + performance.now();
    const secs = Math.floor(ms / 1000);
    const nanos = Math.min(999_999_999, Math.round((ms - secs * 1000) * 1e6));
    if (secs > this.#secs || (secs === this.#secs && nanos > this.#nanos)) {
      this.#set(secs, nanos);
      return this.#format();
    }
    return this.next();
  }

  /** One nanosecond after the last stamp. */
  next(): string {
    if (this.#nanos >= 999_999_999) this.#set(this.#secs + 1, 0);
    else this.#nanos++;
    return this.#format();
  }

  #set(secs: number, nanos: number): void {
    if (secs !== this.#secs || !this.#prefix) {
      this.#prefix = new Date(secs * 1000).toISOString().slice(0, 19);
    }
    this.#secs = secs;
    this.#nanos = nanos;
  }

  #format(): string {
    return `${this.#prefix}.${String(this.#nanos).padStart(9, "0")}Z`;
  }
}

const clock = new LineClock();
const encoder = new TextEncoder();
// deno-lint-ignore no-control-regex
const NON_ASCII = /[^\x00-\x7f]/;

/** Appends log entries to a file and rotates it by size. */
export class LogWriter {
  readonly path: string;
  readonly #options: LogOptions;
  #file: Deno.FsFile;
  #size: number;
  readonly #partial: Record<"stdout" | "stderr", string> = { stdout: "", stderr: "" };
  /** A decoder per stream: a character split across two reads stays with its own stream. */
  readonly #decoders = { stdout: new TextDecoder(), stderr: new TextDecoder() };
  /** Entries not written yet: one write per chunk of output, not per line. */
  #batch = "";
  #batchBytes = 0;

  constructor(path: string, options: LogOptions) {
    this.path = path;
    this.#options = { maxSize: options.maxSize, maxFiles: Math.max(1, options.maxFiles) };
    this.#file = Deno.openSync(path, { append: true, create: true, mode: 0o640 });
    this.#size = this.#file.statSync().size;
  }

  /** Adds output of a stream; complete lines are written, a trailing partial line waits for more. */
  write(stream: "stdout" | "stderr", chunk: Uint8Array): void {
    const text = this.#partial[stream] + this.#decoders[stream].decode(chunk, { stream: true });
    const ascii = !NON_ASCII.test(text);
    let start = 0;
    let time = "";
    for (let nl = text.indexOf("\n"); nl >= 0; nl = text.indexOf("\n", start)) {
      time = time ? clock.next() : clock.now();
      this.#add(text.slice(start, nl + 1), stream, time, ascii);
      start = nl + 1;
    }
    this.#partial[stream] = text.slice(start);
    // A very long line without a newline is written in pieces, as Docker does at 16 KiB.
    if (this.#partial[stream].length >= 16 * 1024) {
      this.#add(this.#partial[stream], stream, time ? clock.next() : clock.now(), ascii);
      this.#partial[stream] = "";
    }
    this.#writeBatch();
  }

  /** Writes a pending partial line (at end of output). */
  flush(stream: "stdout" | "stderr"): void {
    if (!this.#partial[stream]) return;
    this.#add(this.#partial[stream], stream, clock.now(), !NON_ASCII.test(this.#partial[stream]));
    this.#partial[stream] = "";
    this.#writeBatch();
  }

  /** Adds an entry to the batch, rotating first when the file would outgrow its size. */
  #add(log: string, stream: "stdout" | "stderr", time: string, ascii: boolean): void {
    // The JSON of ASCII text is ASCII: its length is its size in bytes.
    const entry = `{"log":${JSON.stringify(log)},"stream":"${stream}","time":"${time}"}\n`;
    const bytes = ascii ? entry.length : encoder.encode(entry).length;
    const size = this.#size + this.#batchBytes;
    if (this.#options.maxSize > 0 && size > 0 && size + bytes > this.#options.maxSize) {
      this.#writeBatch();
      this.#rotate();
    }
    this.#batch += entry;
    this.#batchBytes += bytes;
  }

  #writeBatch(): void {
    if (!this.#batch) return;
    const bytes = encoder.encode(this.#batch);
    this.#batch = "";
    this.#batchBytes = 0;
    let off = 0;
    while (off < bytes.length) off += this.#file.writeSync(bytes.subarray(off));
    this.#size += bytes.length;
  }

  #rotate(): void {
    this.#file.close();
    const keep = this.#options.maxFiles - 1;
    if (keep <= 0) {
      Deno.truncateSync(this.path, 0);
    } else {
      try {
        Deno.removeSync(`${this.path}.${keep}`);
      } catch {
        // not there yet
      }
      for (let i = keep - 1; i >= 1; i--) {
        try {
          Deno.renameSync(`${this.path}.${i}`, `${this.path}.${i + 1}`);
        } catch {
          // not there yet
        }
      }
      Deno.renameSync(this.path, `${this.path}.1`);
    }
    this.#file = Deno.openSync(this.path, { append: true, create: true, mode: 0o640 });
    this.#size = 0;
  }

  /** Flushes partial lines and closes the file. */
  close(): void {
    this.flush("stdout");
    this.flush("stderr");
    this.#file.close();
  }
}

/** Options for {@link readLogs}. */
export interface ReadLogsOptions {
  /** Only the last N lines (of what exists when reading starts). */
  tail?: number;
  /** Only lines at or after this time. */
  since?: Date;
  /** Keep going as lines are added, until `signal` aborts or `done()` says the container has exited. */
  follow?: boolean;
  signal?: AbortSignal;
  /** While following: polled to learn that no more output will come (the container has exited and its logs are flushed). */
  done?: () => boolean | Promise<boolean>;
}

function parseLine(line: string): LogEntry | undefined {
  if (!line) return undefined;
  try {
    return JSON.parse(line) as LogEntry;
  } catch {
    return undefined; // a torn line at a crash: skip it
  }
}

/** The most files a log may have (`logs.max_file`, `--log-opt max-file`). */
export const MAX_FILES = 100;

/**
 * Entries of a container's log, oldest first, optionally following the live
 * file. Files are read as a chain by inode: each rotated file newer than the
 * last one read, then the live file, kept open; at a rotation, what it
 * gained, then the files rotated after it, then the new live file. Files
 * taken by name, or at a size taken after reading, lost what came in between
 * (40 to 380 lines of a busy container at the step from history to
 * following, and at every rotation what came since the last poll).
 */
export async function* readLogs(
  path: string,
  options: ReadLogsOptions = {},
): AsyncGenerator<LogEntry> {
  const since = options.since?.toISOString();
  const accept = (e: LogEntry) => since === undefined || e.time.slice(0, 23) >= since.slice(0, 23);
  let pending = "";
  const utf8 = new TextDecoder(); // one per reader: a character may be split between two reads
  const lines = (bytes: Uint8Array): LogEntry[] => {
    const parts = (pending + utf8.decode(bytes, { stream: true })).split("\n");
    pending = parts.pop()!;
    return parts.map(parseLine).filter((e): e is LogEntry => e !== undefined && accept(e));
  };
  /** Until the first end of the live file: what is there already, for --tail (pushed one by one:
   * a spread of a file's millions of lines overflowed the stack). */
  let history: LogEntry[] | undefined = [];
  const endHistory = () => {
    const h = history!;
    history = undefined;
    return options.tail === undefined ? h : options.tail === 0 ? [] : h.slice(-options.tail);
  };
  let handle: Deno.FsFile | undefined;
  /** The live file's inode while `handle` reads it; else the last file read whole (START: none yet). */
  let ino: number | typeof START = START;
  try {
    while (!options.signal?.aborted) {
      if (!handle) {
        const next = rotatedAfter(path, ino);
        if (next.length) {
          for (const n of next) {
            const whole = await readWhole(n.file, n.ino);
            if (!whole) break; // renamed meanwhile: list again
            pending = "";
            const entries = lines(whole);
            if (history) { for (const e of entries) history.push(e); }
            else yield* entries;
            ino = n.ino;
          }
          continue;
        }
        const live = await Deno.open(path, { read: true }).catch(() => undefined);
        if (live) {
          const at = (await live.stat()).ino ?? -1;
          if (at === ino || rotatedAfter(path, ino).length) {
            live.close(); // not rotated yet, or rotated meanwhile: its successors first
            if (at !== ino) continue;
          } else {
            handle = live;
            ino = at;
            pending = "";
          }
        }
      }
      if (handle) {
        const got = await readToEnd(handle);
        if (got.length) {
          const entries = lines(got);
          if (history) { for (const e of entries) history.push(e); }
          else yield* entries;
          continue;
        }
        const st = await Deno.stat(path).catch(() => undefined);
        if (st && st.ino !== ino) {
          // Rotated: what it gained before the rotation (the writer is done with it), then the
          // files after it.
          const rest = lines(await readToEnd(handle));
          if (history) { for (const e of rest) history.push(e); }
          else yield* rest;
          handle.close();
          handle = undefined;
          continue;
        }
      }
      if (history) {
        yield* endHistory();
        if (!options.follow) return;
        continue;
      }
      if (options.done && (await options.done())) return;
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    handle?.close();
  }
}

/** The inode of "no file read yet": every rotated file comes next. */
const START = Symbol("start");

/** The bytes of the rotated file `file` if it is still the one with inode `ino`. */
async function readWhole(file: string, ino: number): Promise<Uint8Array | undefined> {
  const f = await Deno.open(file, { read: true }).catch(() => undefined);
  if (!f) return undefined;
  try {
    return (await f.stat()).ino === ino ? await readToEnd(f) : undefined;
  } finally {
    f.close();
  }
}

/**
 * The rotated files of a log newer than the one with inode `ino`, oldest
 * first, with their inodes: all of them from START, or when that one is gone
 * (it was the oldest).
 */
function rotatedAfter(
  path: string,
  ino: number | typeof START,
): { file: string; ino: number }[] {
  // Synchronous: names shift at every rotation, and a listing with awaits between its stats
  // mixed two generations of names (a whole file was skipped).
  const rotated: { file: string; ino: number }[] = [];
  for (let i = MAX_FILES - 1; i >= 1; i--) {
    try {
      const ino = Deno.statSync(`${path}.${i}`).ino;
      if (ino != null) rotated.push({ file: `${path}.${i}`, ino });
    } catch {
      // absent
    }
  }
  const at = rotated.findIndex((r) => r.ino === ino);
  return at >= 0 ? rotated.slice(at + 1) : rotated;
}

/** What can be read from `file` now, to its current end. */
async function readToEnd(file: Deno.FsFile): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for (;;) {
    const buf = new Uint8Array(256 * 1024);
    const n = await file.read(buf);
    if (n === null) break;
    parts.push(buf.subarray(0, n));
  }
  return concat(parts);
}
