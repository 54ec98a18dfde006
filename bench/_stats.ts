/**
 * Statistics for tug's benchmarks: medians, ranges, paired ratios, and the
 * noise flag (a min–max spread above 50 % of the median).
 *
 * @module
 */

/** Summary of one series of samples (milliseconds or bytes). */
export interface Summary {
  n: number;
  median: number;
  min: number;
  max: number;
  /** (max − min) / median. */
  spread: number;
  /** True when the spread exceeds 50 %: the figure is noisy. */
  noisy: boolean;
}

/** The median of `xs`. */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Median, min, max and spread of `xs`. */
export function summarize(xs: readonly number[]): Summary {
  const med = median(xs);
  const min = Math.min(...xs), max = Math.max(...xs);
  const spread = med > 0 ? (max - min) / med : 0;
  return { n: xs.length, median: med, min, max, spread, noisy: spread > 0.5 };
}

/** Ratio of medians, and the median of the per-pair ratios (robust to drift over the run). */
export function pairedRatio(
  a: readonly number[],
  b: readonly number[],
): { ofMedians: number; pairedMedian: number } {
  const pairs = a.map((x, i) => x / b[i]!);
  return { ofMedians: median(a) / median(b), pairedMedian: median(pairs) };
}

/** Formats milliseconds for tables. */
export function ms(x: number): string {
  return `${x.toFixed(1)} ms`;
}
