/**
 * Durations (`1h30m`, `10s`, `500ms`) and byte sizes (`10MiB`, `512k`, `1g`)
 * as people write them in flags and config files, and back. Sizes follow
 * Docker's `--log-opt max-size` rules: units are binary whatever their
 * spelling (`k`, `kb` and `kib` are all 1024 bytes), case does not matter.
 *
 * @module
 */

import { InvalidArgument } from "../errors.ts";

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const DURATION = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h))+$/;
const DURATION_PART = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;

/**
 * Parses a duration such as `1h30m`, `10s` or `250ms` into milliseconds.
 * `0` alone is accepted too. Throws InvalidArgument naming `what`.
 */
export function parseDuration(text: string, what = "duration"): number {
  const s = text.trim();
  if (s === "0") return 0;
  if (!DURATION.test(s)) {
    throw new InvalidArgument(
      `Invalid ${what} ${JSON.stringify(text)}: expected a duration such as 10s, 1m30s or 500ms`,
    );
  }
  let ms = 0;
  for (const [, n, unit] of s.matchAll(DURATION_PART)) ms += Number(n) * DURATION_UNITS[unit!]!;
  return Math.round(ms);
}

/** Formats milliseconds as the shortest duration {@link parseDuration} reads back: `1h30m`, `10s`, `1500ms`. */
export function formatDuration(ms: number): string {
  if (ms === 0) return "0s";
  if (ms % 1000 !== 0) return `${ms}ms`;
  let s = ms / 1000;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  return `${h ? `${h}h` : ""}${m ? `${m}m` : ""}${s ? `${s}s` : ""}`;
}

const SIZE = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?$/i;
const SIZE_UNITS: Record<string, number> = {
  "": 1,
  k: 1024,
  m: 1024 ** 2,
  g: 1024 ** 3,
  t: 1024 ** 4,
};

/**
 * Parses a byte size: a number of bytes, or a number with a binary unit
 * (`k`, `KB`, `KiB`, `m`, `MiB`, `g`, `GiB`, `t`). Throws InvalidArgument
 * naming `what`.
 */
export function parseSize(text: string | number, what = "size"): number {
  if (typeof text === "number") {
    if (!Number.isSafeInteger(text) || text < 0) {
      throw new InvalidArgument(`Invalid ${what} ${text}: expected a whole number of bytes`);
    }
    return text;
  }
  const m = SIZE.exec(text.trim());
  if (!m) {
    throw new InvalidArgument(
      `Invalid ${what} ${JSON.stringify(text)}: expected a size such as 512, 64KiB, 10MiB or 1g`,
    );
  }
  const bytes = Math.round(Number(m[1]) * SIZE_UNITS[m[2]!.toLowerCase()]!);
  if (!Number.isSafeInteger(bytes)) {
    throw new InvalidArgument(`Invalid ${what} ${JSON.stringify(text)}: too large`);
  }
  return bytes;
}

/** Formats bytes exactly, in the largest binary unit that divides them: `10MiB`, `1536KiB`, `1000`. */
export function formatSize(bytes: number): string {
  for (
    const [unit, n] of [["TiB", 1024 ** 4], ["GiB", 1024 ** 3], ["MiB", 1024 ** 2], [
      "KiB",
      1024,
    ]] as const
  ) {
    if (bytes >= n && bytes % n === 0) return `${bytes / n}${unit}`;
  }
  return String(bytes);
}

/** Bytes for people: `0 B`, `512 B`, `1.5 KiB`, `12.3 MiB`. */
export function humanSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KiB", "MiB", "GiB", "TiB", "PiB"];
  let v = bytes / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v < 10 ? v.toFixed(1) : v < 100 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}
