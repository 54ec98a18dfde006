/**
 * The benchmark's results: comparisons recorded round by round (every
 * sample kept), machine facts and versions, and their rendering into the
 * JSON file and the Markdown report (medians, min–max, tug/anchor ratios,
 * the noise flag).
 *
 * A comparison holds rounds; a round holds one sample per subject, taken
 * back to back (the order rotating from round to round). The ratio of tug
 * to an anchor is the median of the per-round ratios, over the rounds where
 * both have a sample; the ratio of the medians is shown beside it.
 *
 * @module
 */

import { median, summarize, type Summary } from "./_stats.ts";

/** One comparison: subjects measured in rounds against anchors. */
export interface Comparison {
  id: string;
  title: string;
  /** Unit of the samples: `ms` or `MiB`. */
  unit: "ms" | "MiB";
  /** What one sample is. */
  what: string;
  /** The subject whose ratios are reported (tug's), then the others. */
  subjects: string[];
  /** The subjects tug is divided by. */
  anchors: string[];
  /** Rounds counted; each maps a subject to its sample (a failed subject has none). */
  rounds: Record<string, number>[];
  /** Samples of warm-up rounds, not counted. */
  warmups: Record<string, number>[];
  /** Warm-up rounds run when their samples are not kept (default: `warmups.length`). */
  warmupRounds?: number;
  /** The first error of each subject that failed, and how often it failed. */
  errors: Record<string, { message: string; count: number }>;
  /** Remarks printed under the comparison (fairness, caveats). */
  notes: string[];
  /** The issue's target, when it sets one: tug/anchor at most `ratio`. */
  target?: { anchor: string; ratio: number };
  /** Extra facts (counts, sizes). */
  extra?: Record<string, unknown>;
}

/** A ratio of tug to an anchor. */
export interface Ratio {
  comparison: string;
  title: string;
  anchor: string;
  /** Median of the per-round ratios. */
  paired: number;
  /** Ratio of the medians. */
  ofMedians: number;
  /** Rounds with both samples. */
  n: number;
  /** Either side's min–max spread exceeds 50 % of its median. */
  noisy: boolean;
  target?: number;
}

/** Everything a run produced. */
export interface Results {
  date: string;
  mode: "quick" | "full";
  durationS: number;
  machine: Record<string, string | number>;
  versions: Record<string, string>;
  comparisons: Comparison[];
  /** Derived: summaries per comparison and subject. */
  summaries: Record<string, Record<string, Summary>>;
  /** Derived: tug/anchor ratios. */
  ratios: Ratio[];
}

/** Makes an empty comparison. */
export function comparison(
  init: Omit<Comparison, "rounds" | "warmups" | "errors" | "notes"> & { notes?: string[] },
): Comparison {
  return { ...init, rounds: [], warmups: [], errors: {}, notes: init.notes ?? [] };
}

/** Records a failure of `subject`. */
export function recordError(c: Comparison, subject: string, err: unknown): void {
  const message = (err instanceof Error ? err.message : String(err)).trim().split("\n").slice(0, 4)
    .join(" / ");
  const e = c.errors[subject];
  if (e) e.count++;
  else c.errors[subject] = { message: message.slice(0, 400), count: 1 };
}

/** The samples of `subject` over the counted rounds. */
export function samplesOf(c: Comparison, subject: string): number[] {
  return c.rounds.flatMap((r) => (r[subject] === undefined ? [] : [r[subject]!]));
}

/** Summaries of every subject with samples. */
export function summaries(c: Comparison): Record<string, Summary> {
  const out: Record<string, Summary> = {};
  for (const s of c.subjects) {
    const xs = samplesOf(c, s);
    if (xs.length) out[s] = summarize(xs);
  }
  return out;
}

/** tug's ratio to each anchor that has paired samples. */
export function ratios(c: Comparison): Ratio[] {
  const tug = c.subjects[0]!;
  const sum = summaries(c);
  const out: Ratio[] = [];
  for (const anchor of c.anchors) {
    const pairs = c.rounds.filter((r) =>
      r[tug] !== undefined && r[anchor] !== undefined && r[anchor]! > 0
    );
    if (!pairs.length || !sum[tug] || !sum[anchor]) continue;
    out.push({
      comparison: c.id,
      title: c.title,
      anchor,
      paired: median(pairs.map((r) => r[tug]! / r[anchor]!)),
      ofMedians: sum[tug]!.median / sum[anchor]!.median,
      n: pairs.length,
      noisy: sum[tug]!.noisy || sum[anchor]!.noisy,
      ...(c.target?.anchor === anchor ? { target: c.target.ratio } : {}),
    });
  }
  return out;
}

/** Pairs of (comparison, anchor) without a ratio: tug or the anchor has no sample. */
export function missingRatios(r: Results): { title: string; anchor: string }[] {
  return r.comparisons.flatMap((c) =>
    c.anchors.filter((a) => !r.ratios.some((x) => x.comparison === c.id && x.anchor === a))
      .map((anchor) => ({ title: c.title, anchor }))
  );
}

/** Fills in the derived parts of `results`. */
export function finish(results: Omit<Results, "summaries" | "ratios">): Results {
  return {
    ...results,
    summaries: Object.fromEntries(results.comparisons.map((c) => [c.id, summaries(c)])),
    ratios: results.comparisons.flatMap(ratios),
  };
}

function fmt(x: number, unit: Comparison["unit"]): string {
  if (unit === "ms") {
    return x >= 1000 ? `${(x / 1000).toFixed(2)} s` : `${x.toFixed(x < 10 ? 2 : 1)} ms`;
  }
  return `${x.toFixed(x < 10 ? 2 : 1)} MiB`;
}

function cell(s: Summary | undefined, unit: Comparison["unit"]): string {
  if (!s) return "—";
  return `${fmt(s.median, unit)} (${fmt(s.min, unit)}–${fmt(s.max, unit)})${s.noisy ? " ⚠" : ""}`;
}

function escape(s: string): string {
  return s.replaceAll("|", "\\|").replaceAll("\n", " ");
}

/** The Markdown report: a summary table of ratios, then each comparison's subjects. */
export function markdown(r: Results, chart?: string): string {
  const lines: string[] = [];
  const m = r.machine;
  lines.push(
    `# tug benchmarks, ${r.date.slice(0, 10)} (${r.mode} run, ${Math.round(r.durationS)} s)`,
    "",
  );
  lines.push(
    `Machine: ${m.cpu} (${m.cores} cores), ${m.memoryGiB} GiB memory, Linux ${m.kernel}${
      m.os ? `, ${m.os}` : ""
    }; load average ${m.loadavg} at the start, ${
      m.loadavgEnd ?? "?"
    } at the end (other work shares it).`,
    "",
    `Versions: ${Object.entries(r.versions).map(([k, v]) => `${k} ${v || "?"}`).join("; ")}.`,
    "",
    "Each comparison runs in rounds: one sample of each subject back to back, the order rotating, after " +
      "warm-ups. Figures are medians with min–max; **tug/anchor** is the median of the per-round ratios " +
      "(below 1: tug is faster or smaller), the ratio of the medians beside it. ⚠ marks a min–max spread " +
      "above 50 % of the median: a noisy figure on this shared machine.",
    "",
  );
  lines.push(
    "| comparison | tug | anchor | anchor figure | tug/anchor | of medians | rounds | target |",
  );
  lines.push("|---|---|---|---|---|---|---|---|");
  for (const c of r.comparisons) {
    const sum = r.summaries[c.id] ?? {};
    const tug = c.subjects[0]!;
    for (const anchor of c.anchors) {
      const ratio = r.ratios.find((x) => x.comparison === c.id && x.anchor === anchor);
      const target = c.target?.anchor === anchor ? `≤ ${c.target.ratio}` : "";
      const met = ratio && c.target?.anchor === anchor
        ? (ratio.paired <= c.target.ratio ? " ✓" : " ✗")
        : "";
      lines.push(
        `| ${escape(c.title)} | ${cell(sum[tug], c.unit)} | ${escape(anchor)} | ${
          cell(sum[anchor], c.unit)
        } | ` +
          `${ratio ? `**${ratio.paired.toFixed(2)}**${ratio.noisy ? " ⚠" : ""}` : "—"} | ` +
          `${ratio ? ratio.ofMedians.toFixed(2) : "—"} | ${ratio?.n ?? 0} | ${target}${met} |`,
      );
    }
  }
  lines.push("");
  if (chart) lines.push(`![tug/anchor ratios](${chart})`, "");
  // One line per subject and error, naming the comparisons it cost.
  const failures = new Map<
    string,
    { subject: string; message: string; titles: string[]; count: number }
  >();
  for (const c of r.comparisons) {
    for (const [subject, e] of Object.entries(c.errors)) {
      const key = `${subject}\0${e.message}`;
      const f = failures.get(key) ?? { subject, message: e.message, titles: [], count: 0 };
      f.titles.push(c.title);
      f.count = Math.max(f.count, e.count);
      failures.set(key, f);
    }
  }
  if (failures.size) {
    lines.push("## Failures", "");
    for (const f of failures.values()) {
      lines.push(
        `- ${escape(f.subject)} (${f.count}×; ${f.titles.map(escape).join(", ")}): ${
          escape(f.message)
        }`,
      );
    }
    lines.push("");
  }
  lines.push("## Comparisons", "");
  for (const c of r.comparisons) {
    const sum = r.summaries[c.id] ?? {};
    const warmups = c.warmupRounds ?? c.warmups.length;
    lines.push(
      `### ${c.title}`,
      "",
      `${c.what} ${c.rounds.length} rounds, ${warmups} warm-up.`,
      "",
    );
    lines.push("| subject | median | min | max | spread | n |", "|---|---|---|---|---|---|");
    for (const s of c.subjects) {
      const x = sum[s];
      if (!x) {
        lines.push(`| ${escape(s)} | failed | | | | 0 |`);
        continue;
      }
      lines.push(
        `| ${escape(s)} | ${fmt(x.median, c.unit)} | ${fmt(x.min, c.unit)} | ${
          fmt(x.max, c.unit)
        } | ` +
          `${Math.round(x.spread * 100)} %${x.noisy ? " ⚠" : ""} | ${x.n} |`,
      );
    }
    lines.push("");
    for (const n of c.notes) lines.push(`- ${n}`);
    for (const [k, v] of Object.entries(c.extra ?? {})) {
      lines.push(`- ${k}: \`${JSON.stringify(v)}\``);
    }
    if (c.notes.length || c.extra) lines.push("");
  }
  return lines.join("\n");
}
