/**
 * bench/pull.ts's pulling process: opens a fresh image service in the
 * directory given, pulls (and unpacks) the reference given, and prints one
 * JSON line: the pull's wall time and this process's peak RSS.
 *
 * Usage: deno run -A --v8-flags=--single-threaded bench/_pull_child.ts ROOT REF
 *
 * @module
 */

import { ImageService } from "../images/mod.ts";

const [root, ref] = Deno.args;
if (!root || !ref) {
  console.error("usage: _pull_child.ts ROOT REF");
  Deno.exit(2);
}

function peakRssKiB(): number {
  const status = Deno.readTextFileSync("/proc/self/status");
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0);
}

const start = performance.now();
// `ctr images pull --plain-http` speaks plain HTTP from the start; so does tug here.
const images = await ImageService.open(root, { registry: { plainHttp: true } });
const opened = performance.now();
const { unpacked, stats } = await images.pull(ref);
const pulled = performance.now();
await images.close();
console.log(JSON.stringify({
  openMs: opened - start,
  pullMs: pulled - opened,
  totalMs: pulled - start,
  peakRssKiB: peakRssKiB(),
  layers: unpacked?.unpackedLayers,
  bytes: stats.bytes,
}));
