import { assertEquals, assertMatch } from "../assert.ts";
import { requires } from "../harness.ts";
import { editSpec } from "../bundle.ts";
import { type RuntimeTest, withRuntime } from "./_helpers.ts";

const ignore = requires("root", "busybox", "tug", "cgroup1");

async function refused(t: RuntimeTest, pattern: RegExp) {
  const r = await t.rt(["create", "bad"]);
  assertEquals(r.code, 1, r.stderr);
  assertMatch(r.stderr, pattern);
  // nothing half-made: the id is free again
  assertEquals((await t.rt(["list", "-q"])).stdout, "");
}

Deno.test({
  name: "runtime create names invalid JSON in config.json",
  ignore,
  fn: () =>
    withRuntime({}, async (t) => {
      await Deno.writeTextFile(`${t.bundle}/config.json`, "{ not json");
      await refused(t, /Invalid bundle config .*config\.json: /);
    }),
});

Deno.test({
  name: "runtime create names a missing rootfs",
  ignore,
  fn: () =>
    withRuntime({}, async (t) => {
      await editSpec(t.bundle, (s) => (s.root!.path = "no-such-rootfs"));
      await refused(t, /Invalid root\.path: .*no-such-rootfs does not exist/);
    }),
});

Deno.test({
  name: "runtime create names an unknown namespace type",
  ignore,
  fn: () =>
    withRuntime({}, async (t) => {
      await editSpec(t.bundle, (s) => s.linux!.namespaces!.push({ type: "bogus" }));
      await refused(t, /Invalid linux\.namespaces\[\d+\]\.type: unknown namespace type "bogus"/);
    }),
});

Deno.test({
  name: "runtime create names a bad mount and leaves nothing behind",
  ignore,
  fn: () =>
    withRuntime({ args: ["true"] }, async (t) => {
      await editSpec(t.bundle, (s) =>
        s.mounts!.push({
          destination: "/data",
          type: "bind",
          source: "/does/not/exist",
          options: ["rbind"],
        }));
      await refused(
        t,
        /Cannot create container "bad": mount source "\/does\/not\/exist" of "\/data": ENOENT/,
      );
      await editSpec(
        t.bundle,
        (
          s,
        ) => (s.mounts![s.mounts!.length - 1] = {
          destination: "/data",
          type: "nosuchfs",
          source: "x",
        }),
      );
      await refused(t, /Cannot create container "bad": mount "x" on ".*\/data": ENODEV/);
      await editSpec(t.bundle, (s) => {
        s.mounts![s.mounts!.length - 1] = {
          destination: "/data",
          type: "bind",
          source: t.dir,
          options: ["rbind", "tmpcopyup"],
        };
      });
      await refused(
        t,
        /Invalid mounts\[\d+\]\.options: "tmpcopyup" applies to tmpfs mounts only, and the mount on "\/data" is of type "bind"/,
      );
    }),
});

Deno.test({
  name: "runtime create names an invalid seccomp action",
  ignore: ignore || requires("libseccomp"),
  fn: () =>
    withRuntime({}, async (t) => {
      await editSpec(
        t.bundle,
        (
          s,
        ) => (s.linux!.seccomp = {
          defaultAction: "SCMP_ACT_ALLOW",
          // A syscall name libseccomp does not know is skipped, as runc does (security_test).
          syscalls: [{ names: ["mkdir"], action: "SCMP_ACT_BOGUS" }],
        }),
      );
      await refused(t, /SCMP_ACT_BOGUS/);
    }),
});

Deno.test({
  name: "runtime create names a missing program",
  ignore,
  fn: () =>
    withRuntime({ args: ["no-such-program"] }, async (t) => {
      await refused(t, /executable file not found in \$PATH/);
    }),
});

Deno.test({
  name: "runtime create names a namespace path that is not a namespace of its type",
  ignore,
  fn: () =>
    withRuntime({ args: ["true"] }, async (t) => {
      const join = (type: string, path: string) =>
        editSpec(t.bundle, (s) => {
          s.linux!.namespaces = s.linux!.namespaces!.map((
            n,
          ) => (n.type === type ? { type, path } : n));
        });
      // A file that is no namespace: setns said only "setns fd 23: EINVAL".
      await join("network", "/etc/hostname");
      await refused(
        t,
        /Invalid linux\.namespaces path \/etc\/hostname: not a network namespace \(not a namespace file\)/,
      );
      await join("network", "/proc/self/ns/uts");
      await refused(
        t,
        /path \/proc\/self\/ns\/uts: not a network namespace \(it is a uts namespace\)/,
      );
      await join("network", "/proc/self/ns/net");
      await join("pid", "/etc/hostname");
      await refused(t, /path \/etc\/hostname: not a pid namespace \(not a namespace file\)/);
    }),
});

Deno.test({
  name: "runtime create names a --pid-file whose directory is missing, and a --root that is a file",
  ignore,
  fn: () =>
    withRuntime({ args: ["true"] }, async (t) => {
      const pidFile = await t.rt(["create", "--pid-file", `${t.dir}/nodir/pid`, "c1"]);
      assertEquals(pidFile.code, 1);
      assertMatch(pidFile.stderr, /Write pid file .*\/nodir\/pid: its directory does not exist\n$/);
      assertEquals((await t.rt(["list", "-q"])).stdout, "");
      // --root naming a file: every command says so (it said "File exists (os error 17): mkdir").
      await Deno.writeTextFile(`${t.dir}/rootfile`, "");
      for (const args of [["create", "c1"], ["state", "c1"], ["delete", "c1"], ["list"]]) {
        const r = await t.rt(["--root", `${t.dir}/rootfile`, ...args]);
        assertEquals(r.code, 1, args.join(" "));
        assertMatch(
          r.stderr,
          /Cannot use the state directory .*\/rootfile: it, or a directory above it, is not a directory/,
        );
      }
    }),
});
