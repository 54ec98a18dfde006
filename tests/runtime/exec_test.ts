import { assert, assertEquals, assertMatch, assertStringIncludes } from "../assert.ts";
import { requires, runDetached, TUG } from "../harness.ts";
import { eventually, withRuntime } from "./_helpers.ts";

const ignore = requires("root", "busybox", "tug", "cgroup1");

Deno.test({
  name: "runtime exec runs a process in the container's namespaces and returns its exit code",
  ignore,
  fn: () =>
    withRuntime({ args: ["sleep", "1000"], modify: (s) => (s.hostname = "inside") }, async (t) => {
      await t.ok(["run", "-d", "c1"]);
      const r = await t.rt([
        "exec",
        "c1",
        "sh",
        "-c",
        "echo pid=$$ host=$(hostname); cat /proc/1/cmdline | tr '\\0' ' '; exit 4",
      ]);
      assertEquals(r.code, 4, r.stderr);
      assertMatch(r.stdout, /^pid=\d+ host=inside\nsleep 1000 $/);
      assert(!r.stdout.startsWith("pid=1 "), "the exec'd process is not the container's PID 1");
    }),
});

Deno.test({
  name: "runtime exec applies --user, --cwd, --env and --cap, and --process takes a process.json",
  ignore,
  fn: () =>
    withRuntime({ args: ["sleep", "1000"] }, async (t) => {
      await t.ok(["run", "-d", "c1"]);
      const out = await t.ok([
        "exec",
        "--user",
        "1000:1000",
        "--additional-gids",
        "10",
        "--cwd",
        "/home/user",
        "--env",
        "GREETING=hi",
        "--cap",
        "CAP_NET_RAW",
        "c1",
        "sh",
        "-c",
        "id -u; id -G; pwd; echo $GREETING; grep CapEff /proc/self/status",
      ]);
      assertEquals(out.split("\n").slice(0, 4), ["1000", "1000 10", "/home/user", "hi"]);
      await Deno.writeTextFile(
        `${t.dir}/process.json`,
        JSON.stringify({
          args: ["sh", "-c", "echo from-json $X"],
          env: ["X=1"],
          cwd: "/",
          user: { uid: 0, gid: 0 },
        }),
      );
      assertEquals(
        await t.ok(["exec", "--process", `${t.dir}/process.json`, "c1"]),
        "from-json 1\n",
      );
    }),
});

Deno.test({
  name:
    "runtime exec --cap raises the capability without putting it in the inheritable or ambient set (CVE-2022-29162)",
  ignore,
  fn: () =>
    withRuntime({ args: ["sleep", "1000"] }, async (t) => {
      await t.ok(["run", "-d", "c1"]);
      const caps = async (user: string[], cap: string) =>
        Object.fromEntries(
          (await t.ok(["exec", ...user, "--cap", cap, "c1", "grep", "^Cap", "/proc/self/status"]))
            .trim().split("\n").map((line) => line.split(/:\s+/) as [string, string]),
        );
      // As runc >= 1.1.2: a non-root process keeps no capability across its execve.
      const user = await caps(["--user", "1000:1000"], "CAP_NET_RAW");
      assertEquals([user.CapInh, user.CapEff, user.CapAmb], [
        "0".repeat(16),
        "0".repeat(16),
        "0".repeat(16),
      ]);
      // Root gets it effective (bit 21), still not inheritable or ambient.
      const root = await caps([], "CAP_SYS_ADMIN");
      assertEquals(BigInt(`0x${root.CapEff}`) & (1n << 21n), 1n << 21n);
      assertEquals([root.CapInh, root.CapAmb], ["0".repeat(16), "0".repeat(16)]);
    }),
});

Deno.test({
  name: "runtime exec -d returns at once and writes the pid file",
  ignore,
  fn: () =>
    withRuntime({ args: ["sleep", "1000"] }, async (t) => {
      await t.ok(["run", "-d", "c1"]);
      const r = await runDetached(TUG, [
        "runtime",
        "--root",
        t.root,
        "exec",
        "-d",
        "--pid-file",
        `${t.dir}/exec.pid`,
        "c1",
        "sleep",
        "999",
      ]);
      assertEquals(r.code, 0, r.stderr);
      const pid = Number(await Deno.readTextFile(`${t.dir}/exec.pid`));
      assertStringIncludes(await Deno.readTextFile(`/proc/${pid}/cmdline`), "sleep\x00999");
      assertEquals(JSON.parse(await t.ok(["ps", "--format", "json", "c1"])).length, 2);
    }),
});

Deno.test({
  name: "runtime exec refuses a stopped container and a missing program",
  ignore,
  fn: () =>
    withRuntime({ args: ["sleep", "1000"] }, async (t) => {
      await t.ok(["run", "-d", "c1"]);
      const missing = await t.rt(["exec", "c1", "no-such-program"]);
      assertEquals(missing.code, 1);
      assertMatch(
        missing.stderr,
        /Cannot exec in container "c1": exec: "no-such-program": executable file not found in \$PATH/,
      );
      await t.ok(["kill", "c1", "KILL"]);
      await eventually(
        async () => JSON.parse(await t.ok(["state", "c1"])).status === "stopped",
        5000,
        "stopped",
      );
      const stopped = await t.rt(["exec", "c1", "true"]);
      assertMatch(stopped.stderr, /Cannot exec in container "c1": it is stopped/);
    }),
});

Deno.test({
  name:
    "the exec stage is non-dumpable: the container cannot open its /proc/<pid>/exe (CVE-2019-5736 class)",
  ignore,
  fn: () =>
    withRuntime({ args: ["sleep", "1000"] }, async (t) => {
      await t.ok(["run", "-d", "c1"]);
      // One exec lingers as tug's stage inside the container (test-only pause before execve)...
      const lingering = runDetached(TUG, ["runtime", "--root", t.root, "exec", "c1", "true"], {
        env: { ...Deno.env.toObject(), TUG_TEST_EXEC_PAUSE_MS: "3000" },
      });
      // ...while another looks for it from inside and tries to read its memory and binary.
      let probe = "";
      await eventually(
        async () => {
          probe = await t.ok([
            "exec",
            "c1",
            "sh",
            "-c",
            `
          for p in /proc/[0-9]*; do
            [ "\${p#/proc/}" = "$$" ] && continue # this shell: its script names what it looks for
            case "$(tr '\\0' ' ' < $p/cmdline 2>/dev/null)" in *TUG_STAGE_MARK*|*"runtime --root"*exec*) ;; *) continue ;; esac
            echo "stage=\${p#/proc/}"
            cat $p/exe > /dev/null 2>&1 && echo read-exe || echo no-read-exe
            (echo x >> $p/exe) 2>/dev/null && echo write-exe || echo no-write-exe
            cat $p/environ > /dev/null 2>&1 && echo read-environ || echo no-read-environ
          done`,
          ]);
          return probe.includes("stage=");
        },
        3000,
        "the exec stage to show up in the container",
      );
      assertStringIncludes(probe, "no-read-exe");
      assertStringIncludes(probe, "no-write-exe");
      assertStringIncludes(probe, "no-read-environ");
      assertEquals((await lingering).code, 0);
    }),
});
