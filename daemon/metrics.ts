/**
 * Prometheus metrics in the text exposition format (version 0.0.4): a small
 * registry of counters, gauges and histograms that the daemon updates, plus
 * providers asked for their samples at scrape time (per-container cgroup
 * figures come from one, see {@link containerMetricsProvider}).
 *
 * @example
 * ```ts
 * const registry = new MetricsRegistry();
 * const pulls = registry.counter("tug_image_pulls_total", "Image pulls started.", ["result"]);
 * pulls.inc({ result: "success" });
 * registry.addProvider(containerMetricsProvider(async () => [{ id, namespace, stats }]));
 * const text = await registry.render();
 * ```
 *
 * @module
 */

import type { CgroupStats } from "../runtime/cgroups/types.ts";

/** Label values of one sample. */
export type Labels = Record<string, string>;

/** The metric types of the text format. */
export type MetricType = "counter" | "gauge" | "histogram" | "untyped";

/** One sample line. */
export interface MetricSample {
  /** The sample's name when it differs from the family's (`<name>_bucket`, `_sum`, `_count`). */
  name?: string;
  labels?: Labels;
  value: number;
}

/** A metric family: `# HELP`, `# TYPE` and its samples. */
export interface MetricFamily {
  name: string;
  help: string;
  type: MetricType;
  samples: MetricSample[];
}

/** Something asked for metric families at each scrape. */
export interface MetricsProvider {
  collect(): MetricFamily[] | Promise<MetricFamily[]>;
}

/** The content type of the text format. */
export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

function labelKey(names: readonly string[], labels: Labels): string {
  return names.map((n) => labels[n] ?? "").join("\0");
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}

function formatLabels(labels: Labels | undefined): string {
  const entries = Object.entries(labels ?? {});
  if (entries.length === 0) return "";
  return `{${entries.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(",")}}`;
}

/** Renders families in the text format. */
export function renderFamilies(families: readonly MetricFamily[]): string {
  let out = "";
  for (const f of families) {
    out += `# HELP ${f.name} ${escapeHelp(f.help)}\n# TYPE ${f.name} ${f.type}\n`;
    for (const s of f.samples) {
      out += `${s.name ?? f.name}${formatLabels(s.labels)} ${formatValue(s.value)}\n`;
    }
  }
  return out;
}

abstract class Metric {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];

  constructor(name: string, help: string, labelNames: readonly string[]) {
    if (!NAME.test(name)) throw new Error(`Invalid metric name ${JSON.stringify(name)}`);
    for (const l of labelNames) {
      if (!LABEL.test(l) || l.startsWith("__")) {
        throw new Error(`Invalid label name ${JSON.stringify(l)}`);
      }
    }
    this.name = name;
    this.help = help;
    this.labelNames = labelNames;
  }

  protected labelsOf(labels: Labels): Labels {
    const out: Labels = {};
    for (const n of this.labelNames) out[n] = labels[n] ?? "";
    return out;
  }

  abstract family(): MetricFamily;
}

/** A value that only goes up. */
export class Counter extends Metric {
  readonly #values = new Map<string, { labels: Labels; value: number }>();

  /** Adds `by` (default 1, never negative) to the series with `labels`. */
  inc(labels: Labels = {}, by = 1): void {
    if (by < 0) throw new Error(`Counter ${this.name} cannot decrease`);
    const key = labelKey(this.labelNames, labels);
    const cur = this.#values.get(key);
    if (cur) cur.value += by;
    else this.#values.set(key, { labels: this.labelsOf(labels), value: by });
  }

  /** The value of the series with `labels` (0 when never incremented). */
  get(labels: Labels = {}): number {
    return this.#values.get(labelKey(this.labelNames, labels))?.value ?? 0;
  }

  family(): MetricFamily {
    const samples = [...this.#values.values()].map((v) => ({ labels: v.labels, value: v.value }));
    if (samples.length === 0 && this.labelNames.length === 0) {
      samples.push({ labels: {}, value: 0 });
    }
    return { name: this.name, help: this.help, type: "counter", samples };
  }
}

/** A value that goes up and down, set directly or read from a function at scrape time. */
export class Gauge extends Metric {
  readonly #values = new Map<string, { labels: Labels; value: number }>();
  #read: (() => number) | undefined;

  /** Sets the series with `labels`. */
  set(labels: Labels, value: number): void {
    this.#values.set(labelKey(this.labelNames, labels), { labels: this.labelsOf(labels), value });
  }

  /** Reads the (label-less) value from `fn` at each scrape. */
  collectWith(fn: () => number): void {
    this.#read = fn;
  }

  family(): MetricFamily {
    const samples = [...this.#values.values()].map((v) => ({ labels: v.labels, value: v.value }));
    if (this.#read) samples.push({ labels: {}, value: this.#read() });
    return { name: this.name, help: this.help, type: "gauge", samples };
  }
}

/** Default histogram buckets, in seconds: 1 ms to 60 s. */
export const DEFAULT_BUCKETS: readonly number[] = [
  0.001,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
  30,
  60,
];

/** Observations counted into cumulative buckets, with their sum and count. */
export class Histogram extends Metric {
  readonly buckets: readonly number[];
  readonly #values = new Map<
    string,
    { labels: Labels; counts: number[]; sum: number; count: number }
  >();

  constructor(
    name: string,
    help: string,
    labelNames: readonly string[],
    buckets = DEFAULT_BUCKETS,
  ) {
    super(name, help, labelNames);
    if (labelNames.includes("le")) {
      throw new Error(`Histogram ${name} cannot have a label named le`);
    }
    this.buckets = [...buckets].sort((a, b) => a - b);
  }

  /** Records `value` in the series with `labels`. */
  observe(labels: Labels, value: number): void {
    const key = labelKey(this.labelNames, labels);
    let v = this.#values.get(key);
    if (!v) {
      v = { labels: this.labelsOf(labels), counts: this.buckets.map(() => 0), sum: 0, count: 0 };
      this.#values.set(key, v);
    }
    for (let i = 0; i < this.buckets.length; i++) if (value <= this.buckets[i]!) v.counts[i]!++;
    v.sum += value;
    v.count++;
  }

  family(): MetricFamily {
    const samples: MetricSample[] = [];
    for (const v of this.#values.values()) {
      this.buckets.forEach((le, i) =>
        samples.push({
          name: `${this.name}_bucket`,
          labels: { ...v.labels, le: formatValue(le) },
          value: v.counts[i]!,
        })
      );
      samples.push({
        name: `${this.name}_bucket`,
        labels: { ...v.labels, le: "+Inf" },
        value: v.count,
      });
      samples.push({ name: `${this.name}_sum`, labels: v.labels, value: v.sum });
      samples.push({ name: `${this.name}_count`, labels: v.labels, value: v.count });
    }
    return { name: this.name, help: this.help, type: "histogram", samples };
  }
}

/** Counters, gauges, histograms and providers, rendered together. */
export class MetricsRegistry {
  readonly #metrics = new Map<string, Metric>();
  readonly #providers = new Set<MetricsProvider>();

  #add<M extends Metric>(metric: M): M {
    if (this.#metrics.has(metric.name)) {
      throw new Error(`Metric ${metric.name} is registered already`);
    }
    this.#metrics.set(metric.name, metric);
    return metric;
  }

  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    return this.#add(new Counter(name, help, labelNames));
  }

  gauge(name: string, help: string, labelNames: readonly string[] = []): Gauge {
    return this.#add(new Gauge(name, help, labelNames));
  }

  histogram(
    name: string,
    help: string,
    labelNames: readonly string[] = [],
    buckets?: readonly number[],
  ): Histogram {
    return this.#add(new Histogram(name, help, labelNames, buckets));
  }

  /** Adds a provider asked at each scrape; returns a function that removes it. */
  addProvider(provider: MetricsProvider): () => void {
    this.#providers.add(provider);
    return () => this.#providers.delete(provider);
  }

  /** Every family: the registered metrics, then each provider's (a failing provider is skipped). */
  async collect(onError?: (err: unknown) => void): Promise<MetricFamily[]> {
    const families = [...this.#metrics.values()].map((m) => m.family());
    for (const p of this.#providers) {
      try {
        families.push(...await p.collect());
      } catch (err) {
        onError?.(err);
      }
    }
    return families;
  }

  /** The text exposition of {@link MetricsRegistry.collect}. */
  async render(onError?: (err: unknown) => void): Promise<string> {
    return renderFamilies(await this.collect(onError));
  }
}

/** One container's cgroup figures, as the containers service reports them. */
export interface ContainerMetrics {
  id: string;
  namespace: string;
  stats: CgroupStats;
}

/** Lists the running containers' figures at scrape time. */
export type ContainerMetricsSource = () => ContainerMetrics[] | Promise<ContainerMetrics[]>;

const NS = 1e9;

/**
 * A provider turning per-container cgroup stats into families labelled
 * `container_id` and `namespace`: CPU (seconds), memory (bytes), pids, I/O
 * and OOM kills.
 */
export function containerMetricsProvider(source: ContainerMetricsSource): MetricsProvider {
  return {
    async collect(): Promise<MetricFamily[]> {
      const list = await source();
      const family = (
        name: string,
        help: string,
        type: MetricType,
        value: (s: CgroupStats) => number | null,
      ): MetricFamily => ({
        name,
        help,
        type,
        samples: list.flatMap((c) => {
          const v = value(c.stats);
          return v === null
            ? []
            : [{ labels: { container_id: c.id, namespace: c.namespace }, value: v }];
        }),
      });
      return [
        family(
          "tug_container_cpu_usage_seconds_total",
          "CPU time the container used.",
          "counter",
          (s) => s.cpu.usageNs / NS,
        ),
        family(
          "tug_container_cpu_user_seconds_total",
          "CPU time the container used in user mode.",
          "counter",
          (s) => s.cpu.userNs / NS,
        ),
        family(
          "tug_container_cpu_system_seconds_total",
          "CPU time the container used in kernel mode.",
          "counter",
          (s) => s.cpu.systemNs / NS,
        ),
        family(
          "tug_container_cpu_throttled_periods_total",
          "CFS periods in which the container was throttled.",
          "counter",
          (s) => s.cpu.throttledPeriods,
        ),
        family(
          "tug_container_cpu_throttled_seconds_total",
          "Time the container was throttled.",
          "counter",
          (s) => s.cpu.throttledNs / NS,
        ),
        family(
          "tug_container_memory_usage_bytes",
          "Memory the container uses, page cache included.",
          "gauge",
          (s) => s.memory.usage,
        ),
        family(
          "tug_container_memory_rss_bytes",
          "Anonymous memory of the container.",
          "gauge",
          (s) => s.memory.rss,
        ),
        family(
          "tug_container_memory_cache_bytes",
          "Page cache of the container.",
          "gauge",
          (s) => s.memory.cache,
        ),
        family(
          "tug_container_memory_swap_bytes",
          "Swap the container uses.",
          "gauge",
          (s) => s.memory.swap,
        ),
        family(
          "tug_container_memory_limit_bytes",
          "The container's memory limit.",
          "gauge",
          (s) => s.memory.limit,
        ),
        family(
          "tug_container_memory_failcnt_total",
          "Times the container hit its memory limit.",
          "counter",
          (s) => s.memory.failcnt,
        ),
        family(
          "tug_container_oom_kills_total",
          "Processes of the container the OOM killer killed.",
          "counter",
          (s) => s.oomKills,
        ),
        family(
          "tug_container_pids",
          "Processes and threads in the container.",
          "gauge",
          (s) => s.pids.current,
        ),
        family(
          "tug_container_pids_limit",
          "The container's pids limit.",
          "gauge",
          (s) => s.pids.limit,
        ),
        family(
          "tug_container_io_read_bytes_total",
          "Bytes the container read from block devices.",
          "counter",
          (s) => s.io.readBytes,
        ),
        family(
          "tug_container_io_write_bytes_total",
          "Bytes the container wrote to block devices.",
          "counter",
          (s) => s.io.writeBytes,
        ),
        family(
          "tug_container_io_reads_total",
          "Read operations of the container on block devices.",
          "counter",
          (s) => s.io.readOps,
        ),
        family(
          "tug_container_io_writes_total",
          "Write operations of the container on block devices.",
          "counter",
          (s) => s.io.writeOps,
        ),
      ];
    },
  };
}

/** The daemon's own metrics. */
export interface DaemonMetrics {
  registry: MetricsRegistry;
  /** API requests, by method, route pattern and status. */
  apiRequests: Counter;
  /** API request latency until the response headers, by method, route and status. */
  apiLatency: Histogram;
  /** Pulls finished, by result (`success`, `failure`). */
  pulls: Counter;
  /** Bytes pulls received from registries. */
  pullBytes: Counter;
  /** Pulls that failed. */
  pullFailures: Counter;
  /** Pushes finished, by result. */
  pushes: Counter;
  /** Garbage collections run. */
  gcRuns: Counter;
  /** Garbage collection durations. */
  gcDuration: Histogram;
  /** Objects garbage collection removed, by kind. */
  gcRemoved: Counter;
}

/** Registers the daemon's metrics, with the build info and process figures. */
export function daemonMetrics(
  info: { version: string; ociVersion: string },
  registry = new MetricsRegistry(),
): DaemonMetrics {
  registry.gauge("tug_build_info", "tug's build: the value is 1.", [
    "version",
    "oci_version",
    "deno",
  ])
    .set({ version: info.version, oci_version: info.ociVersion, deno: Deno.version.deno }, 1);
  const started = Date.now() / 1000;
  registry.gauge(
    "process_start_time_seconds",
    "When the daemon started, in seconds since the epoch.",
  )
    .collectWith(() => started);
  registry.gauge("process_resident_memory_bytes", "Resident memory of the daemon.").collectWith(
    () => {
      try {
        const m = /VmRSS:\s+(\d+) kB/.exec(Deno.readTextFileSync("/proc/self/status"));
        return m ? Number(m[1]) * 1024 : NaN;
      } catch {
        return NaN;
      }
    },
  );
  return {
    registry,
    apiRequests: registry.counter("tug_api_requests_total", "API requests served.", [
      "method",
      "route",
      "status",
    ]),
    apiLatency: registry.histogram(
      "tug_api_request_duration_seconds",
      "API request latency, until the response headers.",
      ["method", "route", "status"],
    ),
    pulls: registry.counter("tug_image_pulls_total", "Image pulls finished.", ["result"]),
    pullBytes: registry.counter(
      "tug_image_pull_bytes_total",
      "Bytes image pulls received from registries.",
    ),
    pullFailures: registry.counter("tug_image_pull_failures_total", "Image pulls that failed."),
    pushes: registry.counter("tug_image_pushes_total", "Image pushes finished.", ["result"]),
    gcRuns: registry.counter("tug_gc_runs_total", "Garbage collections run."),
    gcDuration: registry.histogram("tug_gc_duration_seconds", "Garbage collection durations."),
    gcRemoved: registry.counter("tug_gc_removed_total", "Objects garbage collection removed.", [
      "kind",
    ]),
  };
}
