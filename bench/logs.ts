/**
 * Micro-benchmark of the shim's log writer (shim/logs.ts): 50 MB of
 * 64-byte lines and 50 MB of bytes without a newline, handed over in 64 KiB
 * chunks as the shim reads them; prints MB/s. Not part of `make bench`
 * (no anchor does the same work); the README quotes it.
 *
 * Usage: tools/deno run -A --v8-flags=--single-threaded,--max-semi-space-size=1 bench/logs.ts
 *
 * @module
 */

import { LogWriter } from "../shim/logs.ts";

function rate(name: string, chunk: Uint8Array, total = 50e6): void {
  const dir = Deno.makeTempDirSync({ prefix: "tug-bench-logs-" });
  try {
    const w = new LogWriter(`${dir}/c.log`, { maxSize: 0, maxFiles: 1 });
    const start = performance.now();
    for (let bytes = 0; bytes < total; bytes += chunk.length) w.write("stdout", chunk);
    w.close();
    const s = (performance.now() - start) / 1000;
    console.log(`${name}: ${(total / 1e6 / s).toFixed(1)} MB/s`);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

const line = "abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\n";
rate("64-byte lines", new TextEncoder().encode(line.repeat(Math.floor(65536 / line.length))));
rate("no newline (16 KiB pieces)", new Uint8Array(65536).fill(0x78));
