import { assert, assertEquals } from "../../tests/assert.ts";
import { VERSION } from "../../version.ts";
import { testApi } from "./_testing.ts";

Deno.test("version and info describe the daemon", async () => {
  await using api = await testApi();
  const v = await (await api.request("GET", "/v1/version")).json();
  assertEquals(v.version, VERSION);
  const info = await (await api.request("GET", "/v1/info")).json();
  assertEquals(info.root, api.ctx.config.root);
  assertEquals(info.state, api.ctx.config.state);
  assertEquals(info.defaultSnapshotter, "native");
  assert(info.snapshotters.includes("native"));
  assert(["v1", "v2", "hybrid"].includes(info.cgroups.mode), info.cgroups.mode);
  assert(info.cgroups.controllers.length > 0);
  assertEquals(info.runtime.ociVersionMax, "1.1.0");
  assertEquals(info.shims, []);
  assertEquals(info.pid, Deno.pid);
});

Deno.test("info lists the shims the containers service reports", async () => {
  await using api = await testApi();
  api.ctx.hooks.shims = () => [{
    group: "default",
    pid: 42,
    address: "/run/tug/shims/default/shim.sock",
    containers: 3,
  }];
  const info = await (await api.request("GET", "/v1/info")).json();
  assertEquals(info.shims, [{
    group: "default",
    pid: 42,
    address: "/run/tug/shims/default/shim.sock",
    containers: 3,
  }]);
});

Deno.test("system df of an empty namespace is all zeros", async () => {
  await using api = await testApi();
  const df = await (await api.request("GET", "/v1/system/df")).json();
  assertEquals(df, {
    images: { count: 0, size: 0, reclaimable: 0, active: 0 },
    containers: { count: 0 },
    content: { count: 0, size: 0 },
    snapshots: { count: 0, size: 0 },
    ingests: { count: 0, size: 0 },
    reclaimable: 0,
    size: 0,
  });
});

Deno.test("an unknown snapshotter is invalid_argument", async () => {
  await using api = await testApi();
  const res = await api.request("GET", "/v1/snapshots?snapshotter=zfs");
  assertEquals(res.status, 400);
});
