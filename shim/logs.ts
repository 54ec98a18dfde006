/**
 * Container logs: the shim writes every line a container prints to a log
 * file, one JSON object per line as Docker's json-file driver does
 * (`{"log":"hello\n","stream":"stdout","time":"2026-01-02T03:04:05.678901234Z"}`),
 * rotating by size (`<file>.1` … `<file>.<max-file − 1>`). The daemon reads
 * the same files for `tug containers logs [-f] [--tail N] [--since T]`.
 *
 * @module
 */

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
const decoder = new TextDecoder();
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

/** Existing files of a log, oldest first. */
function logFiles(path: string): string[] {
  const files: string[] = [];
  for (let i = MAX_FILES - 1; i >= 1; i--) {
    try {
      Deno.statSync(`${path}.${i}`);
      files.push(`${path}.${i}`);
    } catch {
      // absent
    }
  }
  try {
    Deno.statSync(path);
    files.push(path);
  } catch {
    // no live file (yet)
  }
  return files;
}

/** The complete lines of the live log file, the offset after them and the file's inode; undefined when absent. */
async function readLive(
  path: string,
): Promise<{ text: string; offset: number; ino: number | null } | undefined> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch {
    return undefined;
  }
  try {
    const { ino } = await file.stat();
    const bytes = await readToEnd(file);
    const end = bytes.lastIndexOf(0x0a) + 1; // a line being written is read when following
    return { text: decoder.decode(bytes.subarray(0, end)), offset: end, ino };
  } finally {
    file.close();
  }
}

/** Entries of a container's log, oldest first, optionally following the live file. */
export async function* readLogs(
  path: string,
  options: ReadLogsOptions = {},
): AsyncGenerator<LogEntry> {
  const since = options.since?.toISOString();
  const accept = (e: LogEntry) => since === undefined || e.time.slice(0, 23) >= since.slice(0, 23);
  let entries: LogEntry[] = [];
  // Where following takes over: the end of the last complete line read from the live file, and
  // that file's inode (following from a size taken after reading skipped what came in between).
  let offset = 0;
  let ino: number | null = null;
  for (const file of logFiles(path)) {
    let text: string;
    if (file === path) {
      const live = await readLive(path);
      if (!live) continue;
      ({ offset, ino } = live);
      text = live.text;
    } else {
      text = await Deno.readTextFile(file);
    }
    for (const line of text.split("\n")) {
      const e = parseLine(line);
      if (e && accept(e)) entries.push(e);
    }
  }
  if (options.tail !== undefined) entries = options.tail === 0 ? [] : entries.slice(-options.tail);
  yield* entries;
  if (!options.follow) return;
  // Following keeps the live file open: at a rotation it reads what that file gained, then the
  // files rotated after it, then the new live file (a follower that reopened by name at offset 0
  // lost what came between two polls at every rotation, and whole files when two came in one).
  let handle: Deno.FsFile | undefined;
  let pending = "";
  const lines = (bytes: Uint8Array): LogEntry[] => {
    const parts = (pending + decoder.decode(bytes, { stream: true })).split("\n");
    pending = parts.pop()!;
    return parts.map(parseLine).filter((e): e is LogEntry => e !== undefined && accept(e));
  };
  try {
    while (!options.signal?.aborted) {
      if (!handle) {
        handle = await Deno.open(path, { read: true }).catch(() => undefined);
        if (handle) {
          const { ino: current } = await handle.stat();
          if (current !== ino) {
            ino = current;
            offset = 0;
            pending = "";
          }
          await handle.seek(offset, Deno.SeekMode.Start);
        }
      }
      if (handle) {
        const got = await readToEnd(handle);
        if (got.length) {
          offset += got.length;
          yield* lines(got);
          continue;
        }
        const st = await Deno.stat(path).catch(() => undefined);
        if (st && st.ino !== ino) {
          yield* lines(await readToEnd(handle)); // written just before the rotation
          handle.close();
          handle = undefined;
          for (const file of await rotatedAfter(path, ino)) {
            pending = "";
            yield* lines(await Deno.readFile(file));
          }
          pending = "";
          ino = null; // the live file is read from its start
          continue;
        }
      }
      if (options.done && (await options.done())) return;
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    handle?.close();
  }
}

/** What can be read from `file` now, to its current end. */
async function readToEnd(file: Deno.FsFile): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const buf = new Uint8Array(256 * 1024);
    const n = await file.read(buf);
    if (n === null) break;
    parts.push(buf.subarray(0, n));
    size += n;
  }
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * The rotated files of a log newer than the one with inode `ino`, oldest
 * first (all of them when that one is gone: it was the oldest).
 */
async function rotatedAfter(path: string, ino: number | null): Promise<string[]> {
  const rotated = logFiles(path).filter((f) => f !== path);
  for (let i = rotated.length - 1; i >= 0; i--) {
    const st = await Deno.stat(rotated[i]!).catch(() => undefined);
    if (st && st.ino === ino) return rotated.slice(i + 1);
  }
  return rotated;
}
