import { assert, assertEquals } from "../tests/assert.ts";
import { comparison, finish, markdown, missingRatios, ratios, recordError } from "./_report.ts";
import { ratioChart } from "./_svg.ts";

function sample() {
  const c = comparison({
    id: "run-rm",
    title: "run --rm /bin/true",
    unit: "ms",
    what: "Wall time.",
    subjects: ["tug", "ctr + runc", "ctr + crun"],
    anchors: ["ctr + runc", "ctr + crun"],
    target: { anchor: "ctr + runc", ratio: 0.6 },
  });
  c.rounds.push({ tug: 50, "ctr + runc": 100 }, { tug: 60, "ctr + runc": 100 }, {
    tug: 80,
    "ctr + runc": 100,
  });
  c.rounds.push({ "ctr + runc": 500 }); // tug failed in this round: not paired
  recordError(c, "ctr + crun", new Error("crun: exploded\nsecond line"));
  recordError(c, "tug", new Error("tug: failed once"));
  return c;
}

Deno.test("ratios() pairs only rounds where both subjects have a sample", () => {
  const [r, ...rest] = ratios(sample());
  assertEquals(rest.length, 0); // crun has no sample: no ratio
  assertEquals(r!.anchor, "ctr + runc");
  assertEquals(r!.n, 3);
  assertEquals(r!.paired, 0.6);
  assertEquals(r!.ofMedians, 60 / 100);
  assertEquals(r!.target, 0.6);
});

Deno.test("ratios() flags a ratio noisy when either side spreads over 50 % of its median", () => {
  const c = sample();
  assert(ratios(c)[0]!.noisy); // ctr + runc: 100…500 around a median of 100
  c.rounds.pop();
  assert(!ratios(c)[0]!.noisy); // tug 50…80 around 60: 50 %, not over
});

Deno.test("markdown() shows medians, ranges, ratios, targets, failures and missing anchors", () => {
  const r = finish({
    date: "2026-01-02T03:04:05.000Z",
    mode: "quick",
    durationS: 12,
    machine: { cpu: "Test CPU", cores: 2, memoryGiB: 4, kernel: "6.1", loadavg: "0 0 0" },
    versions: { tug: "0.1.0" },
    comparisons: [sample()],
  });
  const md = markdown(r, "chart.svg");
  assert(md.includes("| run --rm /bin/true | 60.0 ms (50.0 ms–80.0 ms) | ctr + runc |"), md);
  assert(md.includes("**0.60** ⚠"), md);
  assert(md.includes("≤ 0.6 ✓"), md);
  assert(md.includes("| ctr + crun | — |"), md);
  assert(md.includes("- ctr + crun (1×; run --rm /bin/true): crun: exploded / second line"), md);
  assert(md.includes("![tug/anchor ratios](chart.svg)"), md);
  assertEquals(missingRatios(r), [{ title: "run --rm /bin/true", anchor: "ctr + crun" }]);
});

Deno.test("ratioChart() draws one bar per ratio, escapes labels and clips beyond the axis", () => {
  const svg = ratioChart([
    {
      comparison: "a",
      title: "a <b> & c",
      anchor: "x",
      paired: 0.5,
      ofMedians: 0.5,
      n: 3,
      noisy: false,
    },
    {
      comparison: "b",
      title: "b",
      anchor: "y",
      paired: 20,
      ofMedians: 20,
      n: 3,
      noisy: true,
      target: 1,
    },
  ], { missing: [{ title: "c", anchor: "z" }] });
  assert(svg.startsWith("<svg "), svg.slice(0, 40));
  assert(svg.trimEnd().endsWith("</svg>"));
  assert(svg.includes("a &lt;b&gt; &amp; c vs x"));
  assert(!svg.includes("<b>"));
  assert(svg.includes("20.00 ⚠"));
  assert(svg.includes("url(#noisy)"));
  assert(svg.includes("<path d=")); // the clipped bar's arrow
  assert(svg.includes("no result"));
  assertEquals((svg.match(/fill="#3c9a3c"/g) ?? []).length, 1);
});
