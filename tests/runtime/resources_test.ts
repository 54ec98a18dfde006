import { assertEquals, assertMatch } from "../assert.ts";
import { requires } from "../harness.ts";
import { editSpec } from "../bundle.ts";
import { withRuntime } from "./_helpers.ts";

const ignore = requires("root", "busybox", "tug", "cgroup1");

Deno.test({
  name: "an allocation over the memory limit is OOM-killed and reported",
  ignore,
  fn: () =>
    withRuntime(
      { args: ["sh", "-c", "x=$(head -c 200m /dev/zero | tr '\\0' x); echo survived"] },
      async (t) => {
        await editSpec(
          t.bundle,
          (
            s,
          ) => (s.linux!.resources = {
            ...s.linux!.resources,
            memory: { limit: 32 * 1024 * 1024 },
          }),
        );
        const r = await t.rt(["run", "c1"]);
        assertEquals(r.code, 137, r.stderr);
        assertEquals(r.stdout.includes("survived"), false);
        assertMatch(r.stderr, /container "c1" was killed by the OOM killer/);
      },
    ),
});

Deno.test({
  name: "the pids limit refuses forks beyond it",
  ignore,
  fn: () =>
    withRuntime({
      args: ["sh", "-c", "for i in 1 2 3 4 5 6 7 8; do sleep 5 & done; echo all-forked"],
    }, async (t) => {
      await editSpec(
        t.bundle,
        (s) => (s.linux!.resources = { ...s.linux!.resources, pids: { limit: 4 } }),
      );
      const r = await t.rt(["run", "c1"]);
      // busybox sh gives up on the loop when fork fails
      assertEquals(r.code, 2, r.stderr);
      assertMatch(r.stderr, /can't fork: Resource temporarily unavailable/);
      assertEquals(r.stdout.includes("all-forked"), false);
    }),
});

Deno.test({
  name: "cpu and memory settings are visible in the container's own cgroup",
  ignore,
  fn: () =>
    withRuntime({
      args: [
        "sh",
        "-c",
        "cat /sys/fs/cgroup/cpu/cpu.shares /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/memory/memory.limit_in_bytes",
      ],
    }, async (t) => {
      await editSpec(t.bundle, (s) => {
        s.linux!.resources = {
          ...s.linux!.resources,
          cpu: { shares: 512, quota: 50000, period: 100000 },
          memory: { limit: 64 * 1024 * 1024 },
        };
      });
      assertEquals(await t.ok(["run", "c1"]), `512\n50000\n${64 * 1024 * 1024}\n`);
    }),
});
