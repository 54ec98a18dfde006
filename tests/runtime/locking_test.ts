/**
 * Commands on one container that run at once: each waits for the lock of the
 * container (`<root>/@locks/<id>`, see runtime/state.ts lockContainer) and
 * then sees the other's work whole. The races are made deterministic by a
 * prestart hook that holds `create` open, or by the test holding the lock.
 */

import { assert, assertEquals, assertMatch } from "../assert.ts";
import { requires, TUG } from "../harness.ts";
import { editSpec } from "../bundle.ts";
import {
  eventually,
  exited,
  killAll,
  type RuntimeTest,
  statusOf,
  withRuntime,
} from "./_helpers.ts";

const ignore = requires("root", "busybox", "tug", "cgroup1");

/**
 * Gives the bundle a prestart hook that sleeps `seconds`, holding create
 * open; returns a function that waits until the hook runs and gives its pid.
 */
async function slowPrestart(t: RuntimeTest, seconds: number): Promise<() => Promise<number>> {
  const started = `${t.dir}/hook-started`;
  const hook = {
    path: "/bin/sh",
    // Written whole, then renamed: a reader never sees the file empty (a pid of 0 to kill would
    // be the test's own process group).
    args: [
      "sh",
      "-c",
      `echo $$ > ${started}.tmp; mv ${started}.tmp ${started}; exec sleep ${seconds}`,
    ],
  };
  await editSpec(t.bundle, (s) => (s.hooks = { prestart: [hook] }));
  return async () => {
    await eventually(() => Deno.stat(started).then(() => true, () => false), 10_000, "the hook");
    return Number(await Deno.readTextFile(started));
  };
}

/** Takes the lock the runtime takes for container `id`, as another runtime command would hold it. */
async function holdLock(t: RuntimeTest, id: string): Promise<Deno.FsFile> {
  await Deno.mkdir(`${t.root}/@locks`, { recursive: true });
  const file = await Deno.open(`${t.root}/@locks/${id}`, { read: true, write: true, create: true });
  await file.lock(true);
  return file;
}

/** Waits until `n` processes wait for the flock on `path` (blocked locks are listed in /proc/locks with "->"). */
async function waitersReach(path: string, n: number): Promise<void> {
  const { ino } = await Deno.stat(path);
  const count = async () =>
    (await Deno.readTextFile("/proc/locks")).split("\n")
      .filter((l) => l.includes("-> FLOCK") && l.includes(`:${ino} `)).length;
  await eventually(async () => (await count()) === n, 10_000, `${n} waiters on ${path}`);
}

/** Runs `tug runtime` commands at once; tells which have ended. */
function concurrently(t: RuntimeTest, commands: string[][]) {
  const ended = commands.map(() => false);
  const results = Promise.all(commands.map((args, i) =>
    t.rt(args).then((r) => {
      ended[i] = true;
      return r;
    })
  ));
  return { ended, results };
}

Deno.test({
  name: "runtime delete --force waits for the create it races, then removes the container whole",
  ignore,
  fn: () =>
    withRuntime({ args: ["sleep", "1000"] }, async (t) => {
      const hookRuns = await slowPrestart(t, 1);
      const pids: number[] = [];
      try {
        const create = t.rt(["create", "--pid-file", `${t.dir}/pid`, "c1"]);
        pids.push(await hookRuns());
        // create is in its prestart hook: its state directory exists, its record does not yet.
        const del = await t.rt(["delete", "--force", "c1"]);
        const created = await create;
        assertEquals([created.code, created.stderr], [0, ""]);
        assertEquals([del.code, del.stderr], [0, ""]);
        pids.push(Number(await Deno.readTextFile(`${t.dir}/pid`)));
        // The delete came after the create: the init it made is gone with its record and cgroup
        // (before, the delete removed the directory under the create, which then failed).
        assert(await exited(pids[1]!), "the container's init outlived its delete");
        assertEquals((await t.rt(["list", "-q"])).stdout, "");
        // Nothing of c1 is left in the state directory, its lock file included.
        assertEquals([...Deno.readDirSync(t.root)].map((e) => e.name), ["@locks"]);
        assertEquals([...Deno.readDirSync(`${t.root}/@locks`)], []);
      } finally {
        killAll(pids);
      }
    }),
});

Deno.test({
  name:
    "runtime delete --force removes what a create killed in its prestart hook left, cgroup included",
  ignore,
  fn: () =>
    withRuntime({ args: ["sleep", "1000"] }, async (t) => {
      const hookRuns = await slowPrestart(t, 30);
      const pids: number[] = [];
      try {
        const create = new Deno.Command(TUG, {
          args: ["runtime", "--root", t.root, "create", "c1"],
          cwd: t.bundle,
          stdin: "null",
          stdout: "null",
          stderr: "null",
        }).spawn();
        pids.push(await hookRuns());
        create.kill("SIGKILL");
        await create.status;
        const state = await t.rt(["state", "c1"]);
        assertMatch(state.stderr, /Container "c1" does not exist/);
        // The cgroup the create made (its init joined it before the hook): teardown checks it is gone.
        await t.ok(["delete", "--force", "c1"]);
        assertEquals(await Deno.stat(`${t.root}/c1`).then(() => true, () => false), false);
      } finally {
        killAll(pids);
      }
    }),
});

Deno.test({
  name:
    "runtime start and delete wait while another command holds the container; the second gets the error a later call would",
  ignore,
  fn: () =>
    withRuntime({ args: ["sleep", "1000"] }, async (t) => {
      await t.ok(["create", "c1"]);
      let held = await holdLock(t, "c1");
      const starts = concurrently(t, [["start", "c1"], ["start", "c1"]]);
      await waitersReach(`${t.root}/@locks/c1`, 2);
      assertEquals(starts.ended, [false, false]);
      held.close();
      const started = await starts.results;
      assertEquals(started.map((r) => r.code).sort(), [0, 1]);
      const loser = started.find((r) => r.code === 1)!;
      assertMatch(
        loser.stderr,
        /^tug runtime: Cannot start container "c1": it is running, not created\n$/,
      );
      assertEquals(await statusOf(t, "c1"), "running");

      held = await holdLock(t, "c1");
      const deletes = concurrently(t, [["delete", "--force", "c1"], ["delete", "--force", "c1"], [
        "delete",
        "c1",
      ]]);
      await waitersReach(`${t.root}/@locks/c1`, 3);
      assertEquals(deletes.ended, [false, false, false]);
      held.close();
      const deleted = await deletes.results;
      // Both forced deletes succeed (as runc's do); the plain one either refuses the running
      // container or, after a forced one, finds none.
      assertEquals(deleted.slice(0, 2).map((r) => [r.code, r.stderr]), [[0, ""], [0, ""]]);
      assertEquals(deleted[2]!.code, 1);
      assertMatch(
        deleted[2]!.stderr,
        /Cannot delete container "c1": it is running; stop it first or use --force|Container "c1" does not exist/,
      );
      assertEquals((await t.rt(["list", "-q"])).stdout, "");
    }),
});

Deno.test({
  name:
    "runtime create refuses a cgroup that another create fills at the same time (the check and the join are one step)",
  ignore,
  fn: () =>
    withRuntime({ args: ["sleep", "1000"] }, async (t) => {
      // Every container of a test has the same cgroups path. Where is its cgroup (first hierarchy)?
      await t.ok(["create", "c0"]);
      const paths = JSON.parse(await Deno.readTextFile(`${t.root}/c0/state.json`)).cgroupPaths;
      const first = Object.values(paths)[0] as string;
      await t.ok(["delete", "c0"]);
      // Hold its lock as a create between its check that the cgroup is empty and its init's join.
      await Deno.mkdir(first, { recursive: true });
      const held = await Deno.open(first, { read: true });
      let holding = true;
      try {
        await held.lock(true);
        const creates = concurrently(t, [["create", "sa"], ["create", "sb"]]);
        await waitersReach(first, 2);
        held.close();
        holding = false;
        const results = await creates.results;
        assertEquals(results.map((r) => r.code).sort(), [0, 1]);
        const [winner, loser] = results[0]!.code === 0 ? ["sa", results[1]!] : ["sb", results[0]!];
        assertMatch(
          loser.stderr,
          /Cannot create container "s[ab]": its cgroup .* already holds 1 process\(es\); another container uses that cgroups path/,
        );
        assertEquals((await t.rt(["list", "-q"])).stdout, `${winner}\n`);
        assertEquals(await statusOf(t, winner), "created");
        // The loser left the winner's cgroup alone: its init is still in it.
        const pid = JSON.parse(await t.ok(["state", winner])).pid;
        assertEquals(JSON.parse(await t.ok(["ps", "--format", "json", winner])), [pid]);
      } finally {
        if (holding) held.close();
      }
    }),
});

/**
 * Runs `command` and a `delete --force` of c1 while the test holds its lock: both wait. Once it is
 * released the delete always succeeds; `command` comes before it or after it. Returns `command`'s
 * result.
 */
async function raceDelete(t: RuntimeTest, command: string[]) {
  const held = await holdLock(t, "c1");
  const both = concurrently(t, [command, ["delete", "--force", "c1"]]);
  try {
    await waitersReach(`${t.root}/@locks/c1`, 2);
    assertEquals(both.ended, [false, false]);
  } finally {
    held.close();
  }
  const [r, del] = await both.results;
  assertEquals([del!.code, del!.stderr], [0, ""]);
  assertEquals((await t.rt(["list", "-q"])).stdout, "");
  return r!;
}

/** The error of a command that came after the delete: what a later call gets. */
const GONE = /^tug runtime: Container "c1" does not exist\n$/;

Deno.test({
  name:
    "runtime pause and resume wait while another command holds the container; racing a delete, they act before it or find no container",
  ignore,
  fn: () =>
    withRuntime({ args: ["sleep", "1000"] }, async (t) => {
      // Before, they took no lock: a pause could freeze the cgroup the delete was removing (a
      // freezer ENOENT), or leave state saying "paused" of a container being killed.
      await t.ok(["run", "-d", "c1"]);
      let r = await raceDelete(t, ["pause", "c1"]);
      if (r.code !== 0) assertMatch(r.stderr, GONE);
      await t.ok(["run", "-d", "c1"]);
      await t.ok(["pause", "c1"]);
      r = await raceDelete(t, ["resume", "c1"]);
      if (r.code !== 0) assertMatch(r.stderr, GONE);
    }),
});

Deno.test({
  name:
    "runtime exec waits while another command holds the container; racing a delete, its process dies with the container or it finds none",
  ignore,
  fn: () =>
    withRuntime({ args: ["sleep", "1000"] }, async (t) => {
      await t.ok(["run", "-d", "c1"]);
      const pidFile = `${t.dir}/exec.pid`;
      const r = await raceDelete(t, ["exec", "--pid-file", pidFile, "c1", "sleep", "1000"]);
      const ran = await Deno.stat(pidFile).then(() => true, () => false);
      if (ran) {
        // exec came first: its process was in the cgroup, and the delete killed it with the rest.
        assertEquals(r.code, 137);
        assert(await exited(Number(await Deno.readTextFile(pidFile))), "the exec'd process lives");
      } else {
        assertMatch(r.stderr, GONE);
      }
    }),
});
