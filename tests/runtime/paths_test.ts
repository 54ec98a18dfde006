import { assert, assertEquals, assertMatch, assertStringIncludes } from "../assert.ts";
import { requires } from "../harness.ts";
import { editSpec } from "../bundle.ts";
import { startSwapper } from "../racer.ts";
import { withRuntime } from "./_helpers.ts";

const ignore = requires("root", "busybox", "tug", "cgroup1");

function names(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => e.name).sort();
}

/** Mount points in the container's mountinfo output. */
function mountPoints(mountinfo: string): string[] {
  return mountinfo.split("\n").map((l) => l.split(" ")[4] ?? "").filter(Boolean);
}

Deno.test({
  name:
    "mount destinations through symlinks out of the root land inside it and make nothing on the host",
  ignore,
  fn: () =>
    withRuntime({ args: ["cat", "/proc/self/mountinfo"] }, async (t) => {
      const host = `${t.dir}/host`;
      const rootfs = `${t.bundle}/rootfs`;
      await Deno.mkdir(host);
      await Deno.writeTextFile(`${t.dir}/file`, "x\n");
      await Deno.symlink(host, `${rootfs}/race`); // absolute, to a host directory
      await Deno.symlink("../../../../../../../..", `${rootfs}/up`); // climbs past the root
      await Deno.mkdir(`${rootfs}/deep`);
      await Deno.symlink("../up/../race", `${rootfs}/deep/link`);
      await editSpec(t.bundle, (s) => {
        s.mounts!.push(
          { destination: "/race/x/d0", type: "tmpfs", source: "tmpfs" },
          { destination: "/race/x/f0", type: "bind", source: `${t.dir}/file`, options: ["bind"] },
          { destination: "/up/u0", type: "tmpfs", source: "tmpfs" },
          { destination: "/deep/link/y", type: "tmpfs", source: "tmpfs", options: ["ro"] },
        );
      });
      const points = mountPoints(await t.ok(["run", "c1"]));
      for (const p of [`${host}/x/d0`, `${host}/x/f0`, "/u0", `${host}/y`]) {
        assert(points.includes(p), `no mount at ${p} in ${points.join(" ")}`);
      }
      assertEquals(names(host), [], "entries were made in the host directory");
      assert(Deno.statSync(`${rootfs}${host}/x/d0`).isDirectory);
      assert(Deno.statSync(`${rootfs}${host}/x/f0`).isFile);
    }),
});

Deno.test({
  name:
    "a directory swapped for a symlink to the host while create runs never makes tug write there",
  ignore: ignore || requires("python3"),
  fn: () =>
    withRuntime({ args: ["true"] }, async (t) => {
      const host = `${t.dir}/host`;
      const race = `${t.bundle}/rootfs/race`;
      await Deno.mkdir(host);
      await Deno.mkdir(`${race}/x`, { recursive: true });
      await Deno.symlink(host, `${race}/xl`);
      await Deno.writeTextFile(`${t.dir}/file`, "x\n");
      await editSpec(t.bundle, (s) => {
        for (let i = 0; i < 20; i++) {
          s.mounts!.push(
            { destination: `/race/x/d${i}`, type: "tmpfs", source: "tmpfs" },
            {
              destination: `/race/x/f${i}`,
              type: "bind",
              source: `${t.dir}/file`,
              options: ["bind"],
            },
          );
        }
      });
      const swapper = await startSwapper(race, "x", "xl");
      const failures: string[] = [];
      try {
        for (let i = 0; i < 40; i++) {
          const r = await t.rt(["create", "c1"]);
          if (r.code !== 0) failures.push(r.stderr.trim());
          await t.ok(["delete", "--force", "c1"]);
        }
        assert(swapper.running(), "the swapper stopped early");
      } finally {
        await swapper.stop();
      }
      assertEquals(names(host), [], "entries were made in the host directory");
      assertEquals(failures, [], "a create failed");
    }),
});

Deno.test({
  name: "proc and sysfs are refused on a destination that is a symlink in the rootfs",
  ignore,
  fn: () =>
    withRuntime({ args: ["true"] }, async (t) => {
      const rootfs = `${t.bundle}/rootfs`;
      await Deno.mkdir(`${t.dir}/fake`);
      await Deno.writeTextFile(`${t.dir}/fake/cpuinfo`, "fake\n");
      await editSpec(t.bundle, (s) => {
        s.mounts!.push({
          destination: "/vol",
          type: "bind",
          source: `${t.dir}/fake`,
          options: ["rbind"],
        });
      });
      await Deno.mkdir(`${rootfs}/vol`);
      await Deno.remove(`${rootfs}/proc`);
      await Deno.symlink("/vol", `${rootfs}/proc`);
      let r = await t.rt(["create", "c1"]);
      assertEquals(r.code, 1, r.stderr);
      assertMatch(
        r.stderr,
        /Cannot mount proc on "\/proc": it is a symlink in the container's root; filesystem "proc" must be mounted on ordinary directory/,
      );
      assertEquals((await t.rt(["list", "-q"])).stdout, "");
      await Deno.remove(`${rootfs}/proc`);
      await Deno.mkdir(`${rootfs}/proc`);
      await Deno.remove(`${rootfs}/sys`);
      await Deno.symlink("vol", `${rootfs}/sys`);
      r = await t.rt(["create", "c1"]);
      assertEquals(r.code, 1, r.stderr);
      assertMatch(
        r.stderr,
        /Cannot mount sysfs on "\/sys": .*must be mounted on ordinary directory/,
      );
      assertEquals((await t.rt(["list", "-q"])).stdout, "");
      assertEquals(names(`${t.dir}/fake`), ["cpuinfo"]);
    }),
});

Deno.test({
  name:
    "a readonlyPaths entry that is a dangling symlink is skipped, one to a file makes it read-only",
  ignore,
  fn: () =>
    withRuntime({
      args: ["sh", "-c", "{ echo y > /etc/target; } 2>&1; echo rc=$?; cat /etc/target"],
    }, async (t) => {
      const rootfs = `${t.bundle}/rootfs`;
      await Deno.symlink("/no/such/file", `${rootfs}/dangling`);
      await Deno.symlink("../../x/../nowhere", `${rootfs}/etc/relative`);
      await Deno.writeTextFile(`${rootfs}/etc/target`, "x\n");
      await Deno.symlink("target", `${rootfs}/etc/link`);
      await editSpec(t.bundle, (s) => {
        s.root!.readonly = false;
        s.linux!.readonlyPaths!.push("/dangling", "/etc/relative", "/etc/link");
      });
      const out = await t.ok(["run", "c1"]);
      assertStringIncludes(out, "Read-only file system");
      assertStringIncludes(out, "rc=1\nx\n");
    }),
});
