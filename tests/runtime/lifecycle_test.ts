import { assert, assertEquals, assertMatch, assertStringIncludes } from "../assert.ts";
import { requires, runDetached, TUG } from "../harness.ts";
import { eventually, exited, killAll, statusOf, withRuntime } from "./_helpers.ts";

const ignore = requires("root", "busybox", "tug", "cgroup1");

Deno.test({
  name: "runtime run prints the container's output and returns its exit code",
  ignore,
  fn: () =>
    withRuntime({ args: ["sh", "-c", "echo hello from $$; exit 7"] }, async (t) => {
      const r = await t.rt(["run", "c1"]);
      assertEquals(r.stdout, "hello from 1\n");
      assertEquals(r.code, 7);
      assertEquals((await t.rt(["list", "-q"])).stdout, "");
    }),
});

Deno.test({
  name: "runtime create, start, state, kill and delete walk the whole lifecycle",
  ignore,
  fn: () =>
    withRuntime({ args: ["sleep", "1000"] }, async (t) => {
      await t.ok(["create", "--pid-file", `${t.dir}/pid`, "c1"]);
      const state = JSON.parse(await t.ok(["state", "c1"]));
      assertEquals(state.status, "created");
      assertEquals(state.id, "c1");
      assertEquals(state.bundle, t.bundle);
      assertEquals(state.pid, Number(await Deno.readTextFile(`${t.dir}/pid`)));
      assertStringIncludes(await t.ok(["list"]), "created");

      // start twice: the second is a lifecycle error
      await t.ok(["start", "c1"]);
      assertEquals(await statusOf(t, "c1"), "running");
      const again = await t.rt(["start", "c1"]);
      assertEquals(again.code, 1);
      assertMatch(again.stderr, /Cannot start container "c1": it is running, not created/);

      // delete of a running container without --force is refused
      const del = await t.rt(["delete", "c1"]);
      assertEquals(del.code, 1);
      assertMatch(del.stderr, /Cannot delete container "c1": it is running/);

      await t.ok(["kill", "c1", "KILL"]);
      await eventually(async () => (await statusOf(t, "c1")) === "stopped", 5000, "stopped");
      const kill = await t.rt(["kill", "c1"]);
      assertMatch(kill.stderr, /Cannot kill container "c1": it is not running/);
      await t.ok(["delete", "c1"]);
      const gone = await t.rt(["state", "c1"]);
      assertEquals(gone.code, 1);
      assertMatch(gone.stderr, /Container "c1" does not exist/);
    }),
});

Deno.test({
  name: "runtime create refuses a duplicate id and start of an unknown one",
  ignore,
  fn: () =>
    withRuntime({ args: ["true"] }, async (t) => {
      await t.ok(["create", "c1"]);
      const dup = await t.rt(["create", "c1"]);
      assertEquals(dup.code, 1);
      assertMatch(dup.stderr, /Container "c1" already exists/);
      const unknown = await t.rt(["start", "nope"]);
      assertEquals(unknown.code, 1);
      assertMatch(unknown.stderr, /Container "nope" does not exist/);
      // deleting a created container kills its waiting init
      await t.ok(["delete", "c1"]);
    }),
});

Deno.test({
  name: "runtime delete --force removes a running container and --force on an unknown id succeeds",
  ignore,
  fn: () =>
    withRuntime({ args: ["sh", "-c", "sleep 1000 & sleep 1000"] }, async (t) => {
      await t.ok(["run", "--detach", "c1"]);
      assertEquals(await statusOf(t, "c1"), "running");
      await t.ok(["delete", "--force", "c1"]);
      assertEquals((await t.rt(["list", "-q"])).stdout, "");
      await t.ok(["delete", "--force", "never-existed"]);
      // What a create killed before it wrote its record leaves (runc removes it too).
      for (const id of ["c2", "c3"]) {
        await Deno.mkdir(`${t.root}/${id}`);
        await new Deno.Command("mkfifo", { args: [`${t.root}/${id}/exec.fifo`] }).output();
      }
      await t.ok(["delete", "--force", "c2"]);
      const del = await t.rt(["delete", "c3"]);
      assertEquals(del.code, 1);
      assertMatch(del.stderr, /"c3" does not exist/);
      for (const id of ["c2", "c3"]) {
        assertEquals(await Deno.stat(`${t.root}/${id}`).then(() => true, () => false), false);
      }
    }),
});

Deno.test({
  name: "runtime kill delivers signals by name and number",
  ignore,
  fn: () =>
    withRuntime({
      // PID 1 of a pid namespace only gets the signals it handles: trap the ones the test sends.
      args: [
        "sh",
        "-c",
        "trap 'echo got-usr1 > /tmp/sig' USR1; trap 'exit 3' TERM; echo ready > /tmp/ready; while true; do sleep 0.05; done",
      ],
      modify: (s) => s.mounts!.push({ destination: "/tmp", type: "tmpfs", source: "tmpfs" }),
    }, async (t) => {
      await t.ok(["run", "-d", "c1"]);
      const pid = JSON.parse(await t.ok(["state", "c1"])).pid;
      await eventually(
        () => Deno.stat(`/proc/${pid}/root/tmp/ready`).then(() => true, () => false),
        5000,
        "ready",
      );
      await t.ok(["kill", "c1", "USR1"]);
      await eventually(
        () =>
          Deno.readTextFile(`/proc/${pid}/root/tmp/sig`).then(
            (x) => x === "got-usr1\n",
            () => false,
          ),
        5000,
        "USR1 handled",
      );
      await t.ok(["kill", "c1", "15"]);
      await eventually(
        async () => (await statusOf(t, "c1")) === "stopped",
        5000,
        "stopped by TERM",
      );
      await t.ok(["delete", "c1"]);
      const bad = await t.rt(["kill", "c1", "NOTASIGNAL"]);
      assertEquals(bad.code, 1);
      assertMatch(bad.stderr, /Invalid signal: "NOTASIGNAL"/);
    }),
});

Deno.test({
  name: "runtime kill ID 0 succeeds while the container runs and says when it is not running",
  ignore,
  fn: () =>
    withRuntime({ args: ["sleep", "1000"] }, async (t) => {
      await t.ok(["create", "c1"]);
      await t.ok(["kill", "c1", "0"]); // created: the init exists
      await t.ok(["start", "c1"]);
      await t.ok(["kill", "c1", "0"]);
      assertEquals(await statusOf(t, "c1"), "running"); // signal 0 is only a check
      await t.ok(["kill", "c1", "KILL"]);
      await eventually(async () => (await statusOf(t, "c1")) === "stopped", 5000, "stopped");
      const stopped = await t.rt(["kill", "c1", "0"]);
      assertEquals(stopped.code, 1);
      assertMatch(stopped.stderr, /Cannot kill container "c1": it is not running/);
    }),
});

Deno.test({
  name: "runtime pause freezes the container and resume thaws it",
  ignore,
  fn: () =>
    withRuntime({ args: ["sleep", "1000"] }, async (t) => {
      await t.ok(["run", "-d", "c1"]);
      await t.ok(["pause", "c1"]);
      assertEquals(await statusOf(t, "c1"), "paused");
      const pid = JSON.parse(await t.ok(["state", "c1"])).pid;
      const st = await Deno.readTextFile(`/proc/${pid}/status`);
      assertMatch(st, /State:\s+D|State:\s+S/);
      const twice = await t.rt(["pause", "c1"]);
      assertMatch(twice.stderr, /Cannot pause container "c1": it is paused, not running/);
      await t.ok(["resume", "c1"]);
      assertEquals(await statusOf(t, "c1"), "running");
      const resumeAgain = await t.rt(["resume", "c1"]);
      assertMatch(resumeAgain.stderr, /Cannot resume container "c1": it is running, not paused/);
      await t.ok(["delete", "--force", "c1"]);
    }),
});

Deno.test({
  name: "runtime ps lists the container's processes and list shows its status",
  ignore,
  fn: () =>
    withRuntime({ args: ["sh", "-c", "sleep 1000 & sleep 1001; true"] }, async (t) => {
      await t.ok(["run", "-d", "c1"]);
      await eventually(
        async () => JSON.parse(await t.ok(["ps", "--format", "json", "c1"])).length === 3,
        5000,
        "3 processes",
      );
      const table = await t.ok(["ps", "c1"]);
      assertStringIncludes(table, "sleep 1001");
      const rows = JSON.parse(await t.ok(["list", "--format", "json"]));
      assertEquals(rows.length, 1);
      assertEquals(rows[0].status, "running");
      assert(rows[0].pid > 0);
    }),
});

Deno.test({
  name: "runtime kill --all reaches every process in the container",
  ignore,
  fn: () =>
    withRuntime({ args: ["sh", "-c", "sleep 1000 & sleep 1001 & wait"] }, async (t) => {
      await t.ok(["run", "-d", "c1"]);
      await eventually(
        async () => JSON.parse(await t.ok(["ps", "--format", "json", "c1"])).length === 3,
        5000,
        "3 processes",
      );
      // Without --all, KILL reaches only the init; with --all every process gets it.
      await t.ok(["kill", "--all", "c1", "KILL"]);
      await eventually(async () => (await statusOf(t, "c1")) === "stopped", 5000, "stopped");
      assertEquals(JSON.parse(await t.ok(["ps", "--format", "json", "c1"])), []);
    }),
});

Deno.test({
  name:
    "runtime ps, kill --all and delete reach what the init of a container without its own PID namespace left",
  ignore,
  fn: () =>
    withRuntime({
      args: ["sh", "-c", "sleep 1000 & exit 0"],
      modify: (s) => (s.linux!.namespaces = s.linux!.namespaces!.filter((n) => n.type !== "pid")),
    }, async (t) => {
      const started: number[] = [];
      const leftover = async (id: string) => {
        await eventually(async () => (await statusOf(t, id)) === "stopped", 5000, "stopped");
        const pids: number[] = JSON.parse(await t.ok(["ps", "--format", "json", id]));
        const cgroup = JSON.parse(await Deno.readTextFile(`${t.root}/${id}/state.json`))
          .cgroupPaths.pids;
        started.push(
          ...(await Deno.readTextFile(`${cgroup}/cgroup.procs`)).split("\n").filter(Boolean).map(
            Number,
          ),
        );
        assertEquals(pids.length, 1);
        assertStringIncludes(await Deno.readTextFile(`/proc/${pids[0]}/cmdline`), "sleep");
        return pids[0]!;
      };
      try {
        // As runc: ps lists it, kill --all signals it although the container is stopped.
        await t.ok(["run", "-d", "c1"]);
        const first = await leftover("c1");
        assertStringIncludes(await t.ok(["ps", "c1"]), "sleep 1000");
        await t.ok(["kill", "--all", "c1", "KILL"]);
        await eventually(() => exited(first), 5000, "leftover killed");
        assertEquals(JSON.parse(await t.ok(["ps", "--format", "json", "c1"])), []);
        await t.ok(["kill", "--all", "c1", "KILL"]); // nothing left to signal: still fine, as runc
        await t.ok(["delete", "c1"]);
        // delete (without --force: the container is stopped) kills what is left, as runc's does.
        await t.ok(["run", "-d", "c2"]);
        const second = await leftover("c2");
        await t.ok(["delete", "c2"]);
        assert(await exited(second), "delete left the leftover running");
        assertEquals((await t.rt(["list", "-q"])).stdout, "");
      } finally {
        killAll(started);
      }
    }),
});

Deno.test({
  name:
    "runtime run of a container without its own PID namespace returns its init's exit code and removes what it left",
  ignore,
  fn: () =>
    withRuntime({
      args: ["sh", "-c", "sleep 1000 & echo $! > /leftover; exit 3"],
      modify: (s) => {
        s.linux!.namespaces = s.linux!.namespaces!.filter((n) => n.type !== "pid");
        s.root!.readonly = false;
      },
    }, async (t) => {
      const leftover = `${t.bundle}/rootfs/leftover`;
      try {
        // The leftover holds run's stdout: wait for run's exit, not for the end of its output.
        const r = await runDetached(TUG, ["runtime", "--root", t.root, "run", "c1"], {
          cwd: t.bundle,
          timeout: 20_000,
        });
        assertEquals([r.code, r.stderr], [3, ""]);
        assertEquals((await t.rt(["list", "-q"])).stdout, "");
        const pid = Number(await Deno.readTextFile(leftover));
        assert(await exited(pid), "run left the leftover running");
      } finally {
        const pid = await Deno.readTextFile(leftover).then(Number, () => 0);
        if (pid > 0) killAll([pid]);
      }
    }),
});
