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
