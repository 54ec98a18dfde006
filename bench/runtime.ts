/**
 * Benchmark: runtime-only start of an OCI bundle. `tug runtime run` of a
 * busybox bundle running /bin/true, paired with `runc run` and `crun run` of
 * the same bundle, in rounds (tug, runc, crun, tug, …) after warm-ups;
 * medians, min–max and ratios.
 *
 * crun 1.8 refuses this machine's hybrid cgroup layout, so the whole
 * benchmark runs in a private mount namespace with /sys/fs/cgroup/unified
 * unmounted (it re-executes itself under `unshare -m`): all three runtimes
 * see the same cgroup layout and none pays for a wrapper process.
 *
 * Usage: deno run -A --v8-flags=--single-threaded bench/runtime.ts [--rounds N] [--json FILE]
 *
 * @module
 */

import { busyboxBundle } from "../tests/bundle.ts";
import { inPrivateMountNamespace } from "./_proc.ts";
import { summarize, type Summary } from "./_stats.ts";

const TUG = new URL("../dist/tug", import.meta.url).pathname;

function flag(name: string, fallback: string): string {
  const i = Deno.args.indexOf(name);
  return i >= 0 && Deno.args[i + 1] ? Deno.args[i + 1]! : fallback;
}

async function which(cmd: string): Promise<string | undefined> {
  const out = await new Deno.Command("sh", { args: ["-c", `command -v ${cmd}`], stdout: "piped" })
    .output();
  const path = new TextDecoder().decode(out.stdout).trim();
  return out.success && path ? path : undefined;
}

/** Wall time of one command in milliseconds; throws on failure. */
async function time(cmd: string, args: string[], cwd: string): Promise<number> {
  const t = performance.now();
  const out = await new Deno.Command(cmd, {
    args,
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const elapsed = performance.now() - t;
  if (!out.success) {
    throw new Error(
      `${cmd} ${args.join(" ")} failed (${out.code}): ${new TextDecoder().decode(out.stderr)}`,
    );
  }
  return elapsed;
}

/** The comparison's result, as recorded in bench/results. */
export interface RuntimeResult {
  name: "runtime-start";
  rounds: number;
  samples: Record<string, number[]>;
  summary: Record<string, Summary>;
  ratios: Record<string, number>;
  versions: Record<string, string>;
}

/** Runs the comparison and returns the samples and summaries. */
export async function benchRuntime(
  options: { rounds: number; warmup: number },
): Promise<RuntimeResult> {
  const dir = await Deno.makeTempDir({ prefix: "tug-bench-rt-" });
  try {
    const bundle = await busyboxBundle(`${dir}/bundle`, { args: ["/bin/true"] });
    const runtimes: Record<string, (id: string) => [string, string[]]> = {
      tug: (id) => [TUG, ["runtime", "--root", `${dir}/tug`, "run", id]],
    };
    const runc = await which("runc");
    const crun = await which("crun");
    if (runc) runtimes.runc = (id) => [runc, ["--root", `${dir}/runc`, "run", id]];
    if (crun) runtimes.crun = (id) => [crun, ["--root", `${dir}/crun`, "run", id]];
    const samples: Record<string, number[]> = Object.fromEntries(
      Object.keys(runtimes).map((k) => [k, []]),
    );
    for (let round = -options.warmup; round < options.rounds; round++) {
      for (const [name, command] of Object.entries(runtimes)) {
        const [cmd, args] = command(`b-${name}-${round + options.warmup}`);
        const t = await time(cmd, args, bundle);
        if (round >= 0) samples[name]!.push(t);
      }
    }
    const summary = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, summarize(v)]));
    const ratios: Record<string, number> = {};
    for (const anchor of ["runc", "crun"]) {
      if (summary[anchor]) ratios[`tug/${anchor}`] = summary.tug!.median / summary[anchor]!.median;
    }
    const versions: Record<string, string> = {};
    for (const [name, cmd] of [["runc", runc], ["crun", crun]] as const) {
      if (!cmd) continue;
      const out = await new Deno.Command(cmd, { args: ["--version"], stdout: "piped" }).output();
      versions[name] = new TextDecoder().decode(out.stdout).split("\n")[0] ?? "";
    }
    const tugVersion = await new Deno.Command(TUG, { args: ["version"], stdout: "piped" }).output();
    versions.tug = new TextDecoder().decode(tugVersion.stdout).trim();
    return { name: "runtime-start", rounds: options.rounds, samples, summary, ratios, versions };
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) {
  await inPrivateMountNamespace(new URL(import.meta.url));
  const result = await benchRuntime({ rounds: Number(flag("--rounds", "20")), warmup: 3 });
  console.log(
    `runtime start of a busybox /bin/true bundle, ${result.rounds} rounds (medians, min–max):`,
  );
  for (const [name, s] of Object.entries(result.summary)) {
    console.log(
      `  ${name.padEnd(5)} ${s.median.toFixed(1)} ms  (${s.min.toFixed(1)}–${s.max.toFixed(1)})${
        s.noisy ? "  noisy" : ""
      }`,
    );
  }
  for (const [name, r] of Object.entries(result.ratios)) console.log(`  ${name} = ${r.toFixed(2)}`);
  const json = flag("--json", "");
  if (json) await Deno.writeTextFile(json, JSON.stringify(result, null, 2));
}
