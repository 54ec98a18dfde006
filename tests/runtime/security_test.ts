import { assert, assertEquals, assertMatch, assertStringIncludes } from "../assert.ts";
import { requires } from "../harness.ts";
import { editSpec } from "../bundle.ts";
import { withRuntime } from "./_helpers.ts";

const ignore = requires("root", "busybox", "tug", "cgroup1");

function field(status: string, name: string): string {
  const m = new RegExp(`^${name}:\\s*(.*)$`, "m").exec(status);
  if (!m) throw new Error(`no ${name} in ${status}`);
  return m[1]!.trim();
}

Deno.test({
  name: "capability sets in /proc/self/status match the spec",
  ignore,
  fn: () =>
    withRuntime({ args: ["cat", "/proc/self/status"] }, async (t) => {
      await editSpec(t.bundle, (s) => {
        s.process!.capabilities = {
          bounding: ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_CHOWN"],
          effective: ["CAP_KILL", "CAP_CHOWN"],
          permitted: ["CAP_KILL", "CAP_CHOWN", "CAP_NET_BIND_SERVICE"],
          inheritable: ["CAP_NET_BIND_SERVICE"],
          ambient: ["CAP_NET_BIND_SERVICE"],
        };
      });
      const status = await t.ok(["run", "c1"]);
      const hex = (...bits: number[]) =>
        bits.reduce((m, b) => m | (1n << BigInt(b)), 0n).toString(16).padStart(16, "0");
      // CAP_CHOWN=0, CAP_KILL=5, CAP_NET_BIND_SERVICE=10
      assertEquals(field(status, "CapBnd"), hex(0, 5, 10));
      assertEquals(field(status, "CapPrm"), hex(0, 5, 10)); // ambient caps are added to permitted at exec
      assertEquals(field(status, "CapEff"), hex(0, 5, 10));
      assertEquals(field(status, "CapInh"), hex(10));
      assertEquals(field(status, "CapAmb"), hex(10));
      assertEquals(field(status, "NoNewPrivs"), "1");
    }),
});

Deno.test({
  name:
    "a missing cwd is made inside the container's root, before it turns read-only, also through a symlink",
  ignore,
  fn: () =>
    withRuntime({ args: ["pwd"] }, async (t) => {
      const outside = `${t.dir}/outside`;
      await Deno.mkdir(outside);
      // An absolute symlink to a host path: inside the container it leads to <rootfs>/<that path>.
      await Deno.symlink(outside, `${t.bundle}/rootfs/link`);
      await editSpec(t.bundle, (s) => (s.process!.cwd = "/work/dir"));
      assertEquals(await t.ok(["run", "c1"]), "/work/dir\n");
      assert((await Deno.stat(`${t.bundle}/rootfs/work/dir`)).isDirectory);
      await editSpec(t.bundle, (s) => (s.process!.cwd = "/link/sub"));
      // pwd prints the path with the link resolved: the same string as the host's, in the rootfs.
      assertEquals(await t.ok(["run", "c1"]), `${outside}/sub\n`);
      assert((await Deno.stat(`${t.bundle}/rootfs${outside}/sub`)).isDirectory);
      assertEquals([...Deno.readDirSync(outside)], []);
    }),
});

Deno.test({
  name: "the process runs with the spec's uid, gid, groups, umask and cwd",
  ignore,
  fn: () =>
    withRuntime({
      args: ["sh", "-c", "grep -E '^(Uid|Gid|Groups|Umask)' /proc/self/status; pwd; echo $HOME"],
    }, async (t) => {
      await editSpec(t.bundle, (s) => {
        s.process!.user = { uid: 1000, gid: 1000, additionalGids: [10, 20], umask: 0o027 };
        s.process!.cwd = "/home/user";
      });
      const out = await t.ok(["run", "c1"]);
      assertMatch(out, /Uid:\s+1000\s+1000\s+1000\s+1000/);
      assertMatch(out, /Gid:\s+1000\s+1000\s+1000\s+1000/);
      assertMatch(out, /Groups:\s+10 20/);
      assertMatch(out, /Umask:\s+0027/);
      assertStringIncludes(out, "/home/user\n/home/user\n");
    }),
});

Deno.test({
  name: "a cwd that climbs with .. or a symlink stays inside the container's root",
  ignore,
  fn: () =>
    withRuntime({ args: ["sh", "-c", "pwd; ls"] }, async (t) => {
      await Deno.symlink("../../../../../../", `${t.bundle}/rootfs/escape`);
      await editSpec(t.bundle, (s) => (s.process!.cwd = "/escape/../../.."));
      const out = await t.ok(["run", "c1"]);
      assertStringIncludes(out, "bin\n");
      assertStringIncludes(out, "escape\n");
      assert(!out.includes("tug-rt-"), out);
    }),
});

Deno.test({
  name: "rlimits are applied",
  ignore,
  fn: () =>
    withRuntime({ args: ["sh", "-c", "ulimit -n; ulimit -Hn; ulimit -c"] }, async (t) => {
      await editSpec(t.bundle, (s) => {
        s.process!.rlimits = [{ type: "RLIMIT_NOFILE", soft: 123, hard: 456 }, {
          type: "RLIMIT_CORE",
          soft: 0,
          hard: 0,
        }];
      });
      assertEquals(await t.ok(["run", "c1"]), "123\n456\n0\n");
    }),
});

Deno.test({
  name: "no file descriptor of the runtime reaches the container",
  ignore,
  fn: () =>
    withRuntime({
      args: ["sh", "-c", "ls /proc/1/fd; for f in 0 1 2; do readlink /proc/1/fd/$f; done"],
    }, async (t) => {
      // The init (the shell, pid 1) holds only stdio: everything the runtime had open is gone.
      const out = (await t.ok(["run", "c1"])).trim().split("\n");
      assertEquals(out.slice(0, 3), ["0", "1", "2"], out.join("\n"));
      assertEquals(out.length, 6, out.join("\n"));
      for (const target of out.slice(3)) assertMatch(target, /^(\/dev\/null|pipe:\[\d+\])$/);
    }),
});

Deno.test({
  name: "a syscall denied by seccomp returns the configured errno",
  ignore: ignore || requires("libseccomp"),
  fn: () =>
    withRuntime(
      { args: ["sh", "-c", "mkdir /tmp/x 2>&1; echo rc=$?; echo still-running"] },
      async (t) => {
        await editSpec(t.bundle, (s) => {
          s.mounts!.push({ destination: "/tmp", type: "tmpfs", source: "tmpfs" });
          s.linux!.seccomp = {
            defaultAction: "SCMP_ACT_ALLOW",
            architectures: ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_AARCH64"],
            // "no_such_call" stands for a syscall newer than this libseccomp (Docker's profile
            // names mseal, statmount …): skipped, as runc does, while the rest applies.
            syscalls: [{
              names: ["no_such_call", "mkdir", "mkdirat"],
              action: "SCMP_ACT_ERRNO",
              errnoRet: 38,
            }],
          };
        });
        const out = await t.ok(["run", "c1"]);
        assertStringIncludes(out, "Function not implemented");
        assertStringIncludes(out, "rc=1");
        assertStringIncludes(out, "still-running");
      },
    ),
});

Deno.test({
  name: "seccomp with SCMP_ACT_KILL_PROCESS kills the container with SIGSYS",
  ignore: ignore || requires("libseccomp"),
  fn: () =>
    withRuntime({ args: ["sh", "-c", "uname -a"] }, async (t) => {
      await editSpec(t.bundle, (s) => {
        s.linux!.seccomp = {
          defaultAction: "SCMP_ACT_ALLOW",
          syscalls: [{ names: ["uname"], action: "SCMP_ACT_KILL_PROCESS" }],
        };
      });
      const r = await t.rt(["run", "c1"]);
      assertEquals(r.code, 128 + 31);
    }),
});
