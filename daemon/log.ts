/**
 * The daemon's log: one logfmt line per message on stderr (which systemd's
 * journal keeps), `time=… level=… msg="…" key=value…`, filtered by level.
 *
 * @module
 */

import type { LogLevel } from "./config.ts";

/** Extra fields of a log line. */
export type LogFields = Record<string, string | number | boolean | undefined>;

/** Writes log lines at or above its level. */
export interface Logger {
  readonly level: LogLevel;
  error(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  debug(msg: string, fields?: LogFields): void;
}

const RANK: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3 };

function quote(v: string): string {
  return /^[A-Za-z0-9_./:@+-]+$/.test(v) ? v : JSON.stringify(v);
}

/** Formats one logfmt line (without the newline). */
export function formatLogLine(
  level: LogLevel,
  msg: string,
  fields: LogFields = {},
  now = new Date(),
): string {
  let line = `time=${now.toISOString()} level=${level} msg=${JSON.stringify(msg)}`;
  for (const [k, v] of Object.entries(fields)) {
    if (v !== undefined) line += ` ${k}=${quote(String(v))}`;
  }
  return line;
}

/** A logger writing to `write` (default: stderr) the messages at `level` and below. */
export function createLogger(level: LogLevel, write?: (line: string) => void): Logger {
  const encoder = new TextEncoder();
  const out = write ?? ((line: string) => {
    try {
      Deno.stderr.writeSync(encoder.encode(line + "\n"));
    } catch {
      // stderr closed: nothing to do
    }
  });
  const at = (l: LogLevel) => (msg: string, fields?: LogFields) => {
    if (RANK[l] <= RANK[level]) out(formatLogLine(l, msg, fields));
  };
  return { level, error: at("error"), warn: at("warn"), info: at("info"), debug: at("debug") };
}
