import { assertEquals, assertMatch } from "../assert.ts";
import { requires } from "../harness.ts";
import { editSpec } from "../bundle.ts";
import { withRuntime } from "./_helpers.ts";

const ignore = requires("root", "busybox", "tug", "cgroup1");

/** A hook that appends "<kind> <status> <id>" (parsed from the State on stdin) to the log. */
function hook(kind: string, log: string, shell = "/bin/sh") {
  return {
    path: shell,
    args: [
      "sh",
      "-c",
      `state=$(cat); echo "${kind} $(echo "$state" | grep -o '"status":"[a-z]*"') $(echo "$state" | grep -o '"id":"[a-z0-9]*"')" >> ${log}`,
    ],
  };
}

Deno.test({
  name: "all six hooks run in order with the container's State on stdin",
  ignore,
  fn: () =>
    withRuntime({ args: ["true"] }, async (t) => {
      const log = `${t.dir}/hooks/log`;
      await Deno.mkdir(`${t.dir}/hooks`);
      await Deno.writeTextFile(log, "");
      await editSpec(t.bundle, (s) => {
        s.mounts!.push({
          destination: "/hooks",
          type: "bind",
          source: `${t.dir}/hooks`,
          options: ["rbind"],
        });
        s.hooks = {
          prestart: [hook("prestart", log)],
          createRuntime: [hook("createRuntime", log)],
          createContainer: [hook("createContainer", log)],
          startContainer: [hook("startContainer", "/hooks/log")],
          poststart: [hook("poststart", log)],
          poststop: [hook("poststop", log)],
        };
      });
      await t.ok(["run", "c1"]);
      const lines = (await Deno.readTextFile(log)).trim().split("\n");
      assertEquals(lines, [
        'prestart "status":"creating" "id":"c1"',
        'createRuntime "status":"creating" "id":"c1"',
        'createContainer "status":"creating" "id":"c1"',
        'startContainer "status":"created" "id":"c1"',
        'poststart "status":"running" "id":"c1"',
        'poststop "status":"stopped" "id":"c1"',
      ]);
    }),
});

Deno.test({
  name: "a failing createRuntime hook fails create and leaves nothing behind",
  ignore,
  fn: () =>
    withRuntime({ args: ["true"] }, async (t) => {
      await editSpec(
        t.bundle,
        (
          s,
        ) => (s.hooks = {
          createRuntime: [{ path: "/bin/sh", args: ["sh", "-c", "echo nope >&2; exit 3"] }],
        }),
      );
      const r = await t.rt(["create", "c1"]);
      assertEquals(r.code, 1);
      assertMatch(r.stderr, /createRuntime hook \/bin\/sh failed with exit code 3: nope/);
      assertEquals((await t.rt(["list", "-q"])).stdout, "");
    }),
});

Deno.test({
  name: "a hook that overruns its timeout is killed and fails create",
  ignore,
  fn: () =>
    withRuntime({ args: ["true"] }, async (t) => {
      await editSpec(
        t.bundle,
        (
          s,
        ) => (s.hooks = { prestart: [{ path: "/bin/sleep", args: ["sleep", "30"], timeout: 1 }] }),
      );
      const r = await t.rt(["create", "c1"]);
      assertMatch(r.stderr, /prestart hook \/bin\/sleep timed out after 1s/);
    }),
});
