/**
 * Transfer progress for `images pull` and `images push`: on a terminal, a
 * bar per blob redrawn in place; otherwise one plain line per change of a
 * blob's status (and of the unpacked layer count), so logs stay readable.
 *
 * @module
 */

import type { BlobProgressInfo, PullProgressInfo, TransferProgressInfo } from "../mod.ts";
import { humanSize } from "../util/units.ts";

/** Receives progress and draws it. */
export interface ProgressView {
  update(
    transfer: TransferProgressInfo | undefined,
    unpack?: { done: number; total: number },
  ): void;
  /** Draws the last state (a terminal view leaves its bars on screen). */
  finish(): void;
}

/** Options for {@link progressView}. */
export interface ProgressViewOptions {
  /** Draw bars (default: when stdout is a terminal). */
  terminal?: boolean;
  /** Where to write (default: stdout). */
  write?: (text: string) => void;
  /** Terminal width (default: the terminal's, else 80). */
  columns?: number;
}

function kind(b: BlobProgressInfo): string {
  if (/manifest|index/.test(b.mediaType)) return "manifest";
  if (/config/.test(b.mediaType)) return "config";
  return "layer";
}

function short(digest: string): string {
  return digest.replace(/^sha256:/, "").slice(0, 12);
}

function bar(done: number, total: number, width: number): string {
  if (width < 3) return "";
  const inner = width - 2;
  const frac = total > 0 ? Math.min(1, done / total) : 0;
  const full = Math.floor(frac * inner);
  const head = full < inner && frac > 0 ? ">" : "";
  return `[${"=".repeat(full)}${head}${" ".repeat(Math.max(0, inner - full - head.length))}]`;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`;
}

/** A progress view for the terminal or for logs. */
export function progressView(options: ProgressViewOptions = {}): ProgressView {
  const encoder = new TextEncoder();
  const write = options.write ?? ((s: string) => void Deno.stdout.writeSync(encoder.encode(s)));
  const terminal = options.terminal ?? Deno.stdout.isTerminal();
  let columns = options.columns ?? 80;
  if (options.columns === undefined && terminal) {
    try {
      // A pseudo-terminal nobody sized reports 0 columns: keep the default then.
      columns = Deno.consoleSize().columns || columns;
    } catch {
      // not a terminal after all
    }
  }
  let last: { transfer?: TransferProgressInfo; unpack?: { done: number; total: number } } = {};

  if (!terminal) {
    const seen = new Map<string, string>();
    let unpacked = -1;
    // Layers unpacked already are counted before the transfer's first report names them
    // ("exists"): the count waits for that report, so that the lines keep their order.
    let transferSeen = false;
    let held: string | undefined;
    return {
      update(transfer, unpack) {
        if (transfer) transferSeen = true;
        for (const b of transfer?.blobs ?? []) {
          if (seen.get(b.digest) === b.status) continue;
          seen.set(b.digest, b.status);
          if (b.status === "waiting") continue;
          write(`${kind(b)} ${b.digest}: ${b.status} (${humanSize(b.total)})\n`);
        }
        if (unpack && unpack.total > 0 && unpack.done !== unpacked) {
          unpacked = unpack.done;
          if (unpack.done > 0) held = `unpacked ${unpack.done}/${unpack.total} layers\n`;
        }
        if (held !== undefined && transferSeen) {
          write(held);
          held = undefined;
        }
      },
      finish() {
        if (held !== undefined) write(held);
        held = undefined;
      },
    };
  }

  let drawn = 0;
  const draw = () => {
    const { transfer, unpack } = last;
    const lines: string[] = [];
    for (const b of transfer?.blobs ?? []) {
      const label = `${kind(b).padEnd(8)} ${short(b.digest)}  ${b.status.padEnd(11)}`;
      const sizes = `${humanSize(b.done)} / ${humanSize(b.total)}`;
      const room = columns - label.length - sizes.length - 4;
      lines.push(`${label} ${bar(b.done, b.total, Math.min(room, 40))} ${sizes}`);
    }
    const parts = [`elapsed ${seconds(transfer?.elapsedMs ?? 0)}`];
    if (transfer) {
      parts.push(
        `${humanSize(transfer.done)} / ${humanSize(transfer.total)}`,
        `${humanSize(transfer.bytesPerSecond)}/s`,
      );
    }
    if (unpack && unpack.total > 0) parts.push(`unpacked ${unpack.done}/${unpack.total}`);
    lines.push(parts.join("  "));
    let out = drawn > 0 ? `\x1b[${drawn}A` : "";
    for (const l of lines) out += `\r\x1b[2K${l.slice(0, columns - 1)}\n`;
    drawn = lines.length;
    write(out);
  };
  let timer: ReturnType<typeof setTimeout> | undefined;
  return {
    update(transfer, unpack) {
      last = {
        ...(transfer ? { transfer } : last.transfer ? { transfer: last.transfer } : {}),
        ...(unpack ? { unpack } : {}),
      };
      if (timer === undefined) {
        draw();
        timer = setTimeout(() => (timer = undefined), 100);
      }
    },
    finish() {
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
      if (last.transfer || last.unpack) draw();
    },
  };
}

/** Adapts a view to pull progress messages. */
export function pullProgress(view: ProgressView): (p: PullProgressInfo) => void {
  return (p) => view.update(p.transfer, p.unpack);
}
