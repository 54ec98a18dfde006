import { assertEquals, assertMatch, assertStringIncludes } from "../assert.ts";
import { requires } from "../harness.ts";
import { editSpec } from "../bundle.ts";
import type { Mount } from "../../runtime/spec.ts";
import { type RuntimeTest, withRuntime } from "./_helpers.ts";

// Mounts over /proc or inside it are refused as runc's checkProcMount refuses them
// (the CVE-2019-16884 and CVE-2019-19921 class), on the destination as resolved inside the root.

const ignore = requires("root", "busybox", "tug", "cgroup1");

/** Adds `mount` to the bundle, then checks that `command` fails naming `why` and leaves nothing behind. */
async function refused(
  t: RuntimeTest,
  mount: Mount,
  why: string,
  command: "create" | "run" = "run",
): Promise<void> {
  await editSpec(t.bundle, (s) => s.mounts!.push(mount));
  const r = await t.rt([command, "c1"]);
  assertEquals(r.code, 1, `${command} exited ${r.code}: ${r.stderr}${r.stdout}`);
  assertStringIncludes(r.stderr, `Cannot create container "c1": ${why}`);
  // No state and no container left; withRuntime's teardown checks mounts, cgroups and processes.
  assertEquals((await t.rt(["list", "-q"])).stdout, "");
  assertEquals(await exists(`${t.root}/c1`), false, "the state directory was left");
}

async function exists(path: string): Promise<boolean> {
  return await Deno.lstat(path).then(() => true, () => false);
}

Deno.test({
  name: "runtime refuses a bind mount onto /proc/self/attr",
  ignore,
  fn: () =>
    withRuntime({ args: ["true"] }, async (t) => {
      await Deno.mkdir(`${t.dir}/attr`);
      const mount = {
        destination: "/proc/self/attr",
        type: "bind",
        source: `${t.dir}/attr`,
        options: ["rbind"],
      };
      const why = '"/proc/self/attr" cannot be mounted because it is inside /proc';
      await refused(t, mount, why, "create");
      await editSpec(t.bundle, (s) => s.mounts!.pop());
      await refused(t, mount, why, "run");
    }),
});

Deno.test({
  name: "runtime refuses a tmpfs over /proc/sys, and anything but proc over /proc",
  ignore,
  fn: () =>
    withRuntime({ args: ["true"] }, async (t) => {
      await refused(
        t,
        { destination: "/proc/sys", type: "tmpfs", source: "tmpfs" },
        '"/proc/sys" cannot be mounted because it is inside /proc',
      );
      await editSpec(t.bundle, (s) => s.mounts!.pop());
      await refused(
        t,
        { destination: "/proc", type: "tmpfs", source: "tmpfs" },
        '"/proc" cannot be mounted because it is not of type proc',
        "create",
      );
    }),
});

Deno.test({
  name: "runtime refuses a destination that a symlink in the rootfs, or in /proc, leads into /proc",
  ignore,
  fn: () =>
    withRuntime({ args: ["true"] }, async (t) => {
      const rootfs = `${t.bundle}/rootfs`;
      await Deno.symlink("/proc", `${rootfs}/abs`);
      await Deno.mkdir(`${rootfs}/d`);
      await Deno.symlink("../../../../proc/sys", `${rootfs}/d/rel`);
      await refused(
        t,
        { destination: "/abs/sys", type: "tmpfs", source: "tmpfs" },
        '"/abs/sys" cannot be mounted because it resolves to "/proc/sys" and is inside /proc',
      );
      await editSpec(t.bundle, (s) => s.mounts!.pop());
      await Deno.mkdir(`${t.dir}/src`);
      await refused(
        t,
        { destination: "/d/rel/kernel", type: "bind", source: `${t.dir}/src`, options: ["bind"] },
        '"/d/rel/kernel" cannot be mounted because it resolves to "/proc/sys/kernel" and is inside /proc',
        "create",
      );
      await editSpec(t.bundle, (s) => s.mounts!.pop());
      await refused(
        t,
        { destination: "/abs", type: "tmpfs", source: "tmpfs" },
        '"/abs" cannot be mounted because it resolves to "/proc" and is not of type proc',
      );
      // A link inside /proc counts too: /proc/net is self/net, so lxcfs's /proc/net/dev is
      // /proc/1/net/dev by the time it is mounted, and refused (by runc as well).
      await editSpec(t.bundle, (s) => s.mounts!.pop());
      await Deno.writeTextFile(`${t.dir}/netdev`, "");
      await refused(
        t,
        {
          destination: "/proc/net/dev",
          type: "bind",
          source: `${t.dir}/netdev`,
          options: ["bind"],
        },
        '"/proc/net/dev" cannot be mounted because it resolves to "/proc/1/net/dev" and is inside /proc',
      );
    }),
});

Deno.test({
  name: "runtime mounts proc on /proc and lets a file be bound onto /proc/cpuinfo",
  ignore,
  fn: () =>
    withRuntime({
      args: ["sh", "-c", "cat /proc/cpuinfo; grep -E ' /proc(/cpuinfo)? ' /proc/self/mountinfo"],
    }, async (t) => {
      // The default spec's proc mount alone first.
      assertMatch(await t.ok(["run", "c0"]), / \/proc .* - proc proc /);
      await Deno.writeTextFile(`${t.dir}/cpuinfo`, "processor : 0\nmodel name : lxcfs says so\n");
      await editSpec(t.bundle, (s) =>
        s.mounts!.push({
          destination: "/proc/cpuinfo",
          type: "bind",
          source: `${t.dir}/cpuinfo`,
          options: ["bind", "ro"],
        }));
      const out = await t.ok(["run", "c1"]);
      assertStringIncludes(out, "processor : 0\nmodel name : lxcfs says so\n");
      assertMatch(out, / \/proc\/cpuinfo ro,.* - /);
      assertMatch(out, / \/proc .* - proc proc /);
    }),
});
