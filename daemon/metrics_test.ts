import type { CgroupStats } from "../runtime/cgroups/types.ts";
import { assert, assertEquals, assertStringIncludes, assertThrows } from "../tests/assert.ts";
import { promtoolCheck } from "../tests/daemon.ts";
import { requires } from "../tests/harness.ts";
import { VERSION } from "../version.ts";
import {
  containerMetricsProvider,
  daemonMetrics,
  MetricsRegistry,
  renderFamilies,
} from "./metrics.ts";

function stats(n: number): CgroupStats {
  return {
    cpu: {
      usageNs: 1.5e9 * n,
      userNs: 1e9 * n,
      systemNs: 0.5e9 * n,
      periods: 10,
      throttledPeriods: 2,
      throttledNs: 3e6,
    },
    memory: {
      usage: 4096 * n,
      maxUsage: 8192,
      limit: n === 1 ? 1 << 20 : null,
      cache: 1024,
      rss: 2048,
      file: 1024,
      anon: 2048,
      swap: 0,
      failcnt: 0,
    },
    pids: { current: n, limit: null },
    io: { readBytes: 100, writeBytes: 200, readOps: 1, writeOps: 2 },
    oomKills: 0,
  };
}

Deno.test("counters, gauges and histograms render in the text format", async () => {
  const r = new MetricsRegistry();
  const c = r.counter("x_requests_total", "Requests.", ["route"]);
  c.inc({ route: "/v1/a" });
  c.inc({ route: "/v1/a" }, 2);
  c.inc({ route: 'we"ird\\\n' });
  r.gauge("x_things", "Things.").collectWith(() => 7);
  const h = r.histogram("x_seconds", "Latency.", ["route"], [0.1, 1]);
  h.observe({ route: "/a" }, 0.05);
  h.observe({ route: "/a" }, 0.5);
  h.observe({ route: "/a" }, 5);
  const text = await r.render();
  assertEquals(
    text,
    [
      "# HELP x_requests_total Requests.",
      "# TYPE x_requests_total counter",
      'x_requests_total{route="/v1/a"} 3',
      'x_requests_total{route="we\\"ird\\\\\\n"} 1',
      "# HELP x_things Things.",
      "# TYPE x_things gauge",
      "x_things 7",
      "# HELP x_seconds Latency.",
      "# TYPE x_seconds histogram",
      'x_seconds_bucket{route="/a",le="0.1"} 1',
      'x_seconds_bucket{route="/a",le="1"} 2',
      'x_seconds_bucket{route="/a",le="+Inf"} 3',
      'x_seconds_sum{route="/a"} 5.55',
      'x_seconds_count{route="/a"} 3',
      "",
    ].join("\n"),
  );
  assertEquals(c.get({ route: "/v1/a" }), 3);
});

Deno.test("the registry refuses bad names, duplicates and decreasing counters", () => {
  const r = new MetricsRegistry();
  assertThrows(() => r.counter("bad-name", "x"));
  assertThrows(() => r.counter("ok_total", "x", ["__reserved"]));
  assertThrows(() => r.histogram("h", "x", ["le"]));
  r.counter("dup_total", "x");
  assertThrows(() => r.counter("dup_total", "x"));
  assertThrows(() => r.counter("c_total", "x").inc({}, -1));
});

Deno.test("a failing provider is skipped and reported", async () => {
  const r = new MetricsRegistry();
  r.addProvider({
    collect() {
      throw new Error("cgroup gone");
    },
  });
  const remove = r.addProvider({
    collect: () => [{ name: "p_x", help: "x", type: "gauge", samples: [{ value: 1 }] }],
  });
  const errors: unknown[] = [];
  assertStringIncludes(await r.render((e) => errors.push(e)), "p_x 1\n");
  assertEquals(errors.length, 1);
  remove();
  assert(!(await r.render()).includes("p_x"));
});

Deno.test("the container provider labels each container's figures", async () => {
  const p = containerMetricsProvider(() => [
    { id: "web", namespace: "default", stats: stats(1) },
    { id: "db", namespace: "prod", stats: stats(2) },
  ]);
  const text = renderFamilies(await p.collect());
  assertStringIncludes(
    text,
    'tug_container_cpu_usage_seconds_total{container_id="web",namespace="default"} 1.5\n',
  );
  assertStringIncludes(
    text,
    'tug_container_memory_usage_bytes{container_id="db",namespace="prod"} 8192\n',
  );
  assertStringIncludes(
    text,
    'tug_container_memory_limit_bytes{container_id="web",namespace="default"} 1048576\n',
  );
  assert(
    !text.includes('tug_container_memory_limit_bytes{container_id="db"'),
    "no limit, no sample",
  );
  assertStringIncludes(text, 'tug_container_pids{container_id="db",namespace="prod"} 2\n');
  assertStringIncludes(
    text,
    'tug_container_io_write_bytes_total{container_id="web",namespace="default"} 200\n',
  );
});

Deno.test({
  name: "the daemon's metrics and the container families pass promtool check metrics",
  ignore: requires("promtool"),
  async fn() {
    const m = daemonMetrics({ version: VERSION, ociVersion: "1.1.0" });
    m.apiRequests.inc({ method: "GET", route: "/v1/images", status: "200" });
    m.apiLatency.observe({ method: "GET", route: "/v1/images", status: "200" }, 0.003);
    m.pulls.inc({ result: "success" });
    m.pullBytes.inc({}, 1234);
    m.gcRuns.inc();
    m.gcDuration.observe({}, 0.02);
    m.gcRemoved.inc({ kind: "blobs" }, 3);
    m.registry.addProvider(
      containerMetricsProvider(() => [{ id: "web", namespace: "default", stats: stats(1) }]),
    );
    const text = await m.registry.render();
    assertStringIncludes(
      text,
      `tug_build_info{version="${VERSION}",oci_version="1.1.0",deno="${Deno.version.deno}"} 1`,
    );
    const { code, output } = await promtoolCheck(text);
    assertEquals(output, "");
    assertEquals(code, 0);
  },
});
