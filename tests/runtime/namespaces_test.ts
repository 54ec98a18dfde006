import { assertEquals, assertMatch, assertNotEquals } from "../assert.ts";
import { requires } from "../harness.ts";
import { editSpec } from "../bundle.ts";
import { statusOf, withRuntime } from "./_helpers.ts";

const ignore = requires("root", "busybox", "tug", "cgroup1");

Deno.test({
  name: "the container's process is PID 1 with its own hostname",
  ignore,
  fn: () =>
    withRuntime({
      args: ["sh", "-c", "echo pid=$$ host=$(hostname) ppid=$PPID"],
      modify: (s) => (s.hostname = "box1"),
    }, async (t) => {
      assertEquals(await t.ok(["run", "c1"]), "pid=1 host=box1 ppid=0\n");
    }),
});

Deno.test({
  name: "every requested namespace differs from the host's and the network has only loopback, up",
  ignore,
  fn: () =>
    withRuntime({
      args: [
        "sh",
        "-c",
        "for n in pid net ipc uts mnt cgroup; do readlink /proc/self/ns/$n; done; ls /sys/class/net; ip link show lo | grep -o '<LOOPBACK,UP'",
      ],
    }, async (t) => {
      const out = (await t.ok(["run", "c1"])).trim().split("\n");
      const host = ["pid", "net", "ipc", "uts", "mnt", "cgroup"].map((n) =>
        Deno.readLinkSync(`/proc/self/ns/${n}`)
      );
      for (const [i, ns] of host.entries()) assertNotEquals(out[i], ns, `namespace ${ns}`);
      assertEquals(out.slice(6), ["lo", "<LOOPBACK,UP"]);
    }),
});

Deno.test({
  name: "a container joins another container's network namespace by path",
  ignore,
  fn: () =>
    withRuntime({ args: ["sleep", "1000"] }, async (t) => {
      await t.ok(["run", "-d", "first"]);
      const pid = JSON.parse(await t.ok(["state", "first"])).pid;
      const netns = Deno.readLinkSync(`/proc/${pid}/ns/net`);
      await editSpec(t.bundle, (s) => {
        s.process!.args = ["readlink", "/proc/self/ns/net"];
        s.linux!.cgroupsPath += "-second";
        s.linux!.namespaces = s.linux!.namespaces!.map((
          n,
        ) => (n.type === "network" ? { type: "network", path: `/proc/${pid}/ns/net` } : n));
      });
      assertEquals((await t.ok(["run", "second"])).trim(), netns);
      assertEquals(await statusOf(t, "first"), "running");
    }),
});

Deno.test({
  name: "a new time namespace applies the configured monotonic offset",
  ignore: ignore || !Deno.readLinkSync("/proc/self/ns/time"),
  fn: () =>
    withRuntime({ args: ["cat", "/proc/uptime"] }, async (t) => {
      await editSpec(t.bundle, (s) => {
        s.linux!.namespaces!.push({ type: "time" });
        s.linux!.timeOffsets = {
          boottime: { secs: 86400 * 365 },
          monotonic: { secs: 86400 * 365 },
        };
      });
      const uptime = Number((await t.ok(["run", "c1"])).split(" ")[0]);
      const hostUptime = Number(Deno.readTextFileSync("/proc/uptime").split(" ")[0]);
      assertEquals(Math.round((uptime - hostUptime) / 86400), 365);
    }),
});

Deno.test({
  name: "a hostname without a uts namespace is refused",
  ignore,
  fn: () =>
    withRuntime({}, async (t) => {
      await editSpec(t.bundle, (s) => (s.linux!.namespaces = s.linux!.namespaces!.filter((n) =>
        n.type !== "uts"
      )));
      const r = await t.rt(["create", "c1"]);
      assertMatch(r.stderr, /Invalid hostname: setting a hostname needs a new uts namespace/);
    }),
});
