/**
 * An SVG bar chart of tug/anchor ratios, written by hand (no library): one
 * horizontal bar per ratio on a logarithmic axis centred on 1 (parity), so
 * that "twice as fast" and "twice as slow" are bars of the same length on
 * either side. Green: tug below the anchor; red: above. A noisy ratio is
 * drawn hatched and marked, a target as a tick on its bar's row.
 *
 * @module
 */

import type { Ratio } from "./_report.ts";

function esc(s: string): string {
  return s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;").replaceAll(
    '"',
    "&quot;",
  );
}

/** Options for {@link ratioChart}. */
export interface ChartOptions {
  title?: string;
  /** Rows without a ratio (tug or the anchor failed), drawn as "no result". */
  missing?: readonly { title: string; anchor: string }[];
  /** Smallest and largest ratio the axis shows (default 1/8 and 8; bars beyond are clipped with an arrow). */
  min?: number;
  max?: number;
}

/** Renders `ratios` as an SVG document. */
export function ratioChart(ratios: readonly Ratio[], options: ChartOptions = {}): string {
  const min = options.min ?? 1 / 8, max = options.max ?? 8;
  const missing = options.missing ?? [];
  const labelW = 390, plotW = 420, valueW = 90, rowH = 26, top = 56, bottom = 44;
  const width = labelW + plotW + valueW + 20;
  const height = top + Math.max(1, ratios.length + missing.length) * rowH + bottom;
  const short = (s: string) => (s.length > 60 ? s.slice(0, 59) + "…" : s);
  const lo = Math.log(min), hi = Math.log(max);
  const x = (v: number) =>
    labelW + ((Math.log(Math.min(max, Math.max(min, v))) - lo) / (hi - lo)) * plotW;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ` +
      `font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">`,
    "<defs>",
    '<pattern id="noisy" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">',
    '<rect width="6" height="6" fill="white" fill-opacity="0.0"/><line x1="0" y1="0" x2="0" y2="6" stroke="white" stroke-width="2" stroke-opacity="0.6"/>',
    "</pattern>",
    "</defs>",
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${
      esc(options.title ?? "tug / anchor (median of paired ratios; below 1: tug better)")
    }</text>`,
  );
  // Grid: powers of two around 1.
  for (let v = min; v <= max * 1.0001; v *= 2) {
    const gx = x(v).toFixed(1);
    const label = v >= 1 ? `${v}×` : `1/${Math.round(1 / v)}`;
    out.push(
      `<line x1="${gx}" y1="${top - 6}" x2="${gx}" y2="${height - bottom + 4}" stroke="${
        v === 1 ? "#333" : "#ddd"
      }" stroke-width="${v === 1 ? 1.5 : 1}"/>`,
      `<text x="${gx}" y="${
        height - bottom + 18
      }" text-anchor="middle" fill="#555">${label}</text>`,
    );
  }
  out.push(
    `<text x="${x(min / 1) + 4}" y="${top - 12}" fill="#2a7d2a">◀ tug faster / smaller</text>`,
    `<text x="${x(max) - 4}" y="${
      top - 12
    }" text-anchor="end" fill="#b03030">tug slower / bigger ▶</text>`,
  );
  ratios.forEach((r, i) => {
    const y = top + i * rowH;
    const x1 = x(1), x2 = x(r.paired);
    const left = Math.min(x1, x2), w = Math.max(1, Math.abs(x2 - x1));
    const color = r.paired <= 1 ? "#3c9a3c" : "#c84040";
    const label = `${r.title} vs ${r.anchor}`;
    out.push(
      `<text x="${labelW - 8}" y="${y + rowH / 2 + 4}" text-anchor="end">${
        esc(short(label))
      }</text>`,
      `<rect x="${left.toFixed(1)}" y="${y + 4}" width="${w.toFixed(1)}" height="${
        rowH - 8
      }" fill="${color}"/>`,
    );
    if (r.noisy) {
      out.push(
        `<rect x="${left.toFixed(1)}" y="${y + 4}" width="${w.toFixed(1)}" height="${
          rowH - 8
        }" fill="url(#noisy)"/>`,
      );
    }
    if (r.paired > max || r.paired < min) {
      const ax = r.paired > max ? x(max) : x(min), d = r.paired > max ? 6 : -6;
      out.push(
        `<path d="M${ax} ${y + 4} l${d} ${(rowH - 8) / 2} l${-d} ${
          (rowH - 8) / 2
        } z" fill="${color}"/>`,
      );
    }
    if (r.target !== undefined) {
      const tx = x(r.target).toFixed(1);
      out.push(
        `<line x1="${tx}" y1="${y + 1}" x2="${tx}" y2="${
          y + rowH - 1
        }" stroke="#222" stroke-width="2" stroke-dasharray="3 2"/>`,
      );
    }
    out.push(
      `<text x="${labelW + plotW + 8}" y="${y + rowH / 2 + 4}">${r.paired.toFixed(2)}${
        r.noisy ? " ⚠" : ""
      }</text>`,
    );
  });
  missing.forEach((m, j) => {
    const y = top + (ratios.length + j) * rowH;
    out.push(
      `<text x="${labelW - 8}" y="${y + rowH / 2 + 4}" text-anchor="end" fill="#888">${
        esc(short(`${m.title} vs ${m.anchor}`))
      }</text>`,
      `<text x="${x(1) + 8}" y="${
        y + rowH / 2 + 4
      }" fill="#888" font-style="italic">no result (see the report's failures)</text>`,
    );
  });
  out.push(
    `<text x="${labelW}" y="${
      height - 8
    }" fill="#555" font-size="11">Log scale. Hatched, ⚠: min–max spread above 50 % of the median. Dashed tick: the target.</text>`,
    "</svg>",
    "",
  );
  return out.join("\n");
}
