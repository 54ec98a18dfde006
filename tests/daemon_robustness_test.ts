/**
 * Robustness of the daemon with containers: 50 containers started at once
 * through the API; `kill -9` of the daemon during container starts and
 * during a pull, then a restart on the same directory (shims keep their
 * containers running and logging, exits that happened meanwhile are not
 * lost); malformed container and task requests get 4xx and change nothing.
 */

import { join } from "node:path";
import { exists } from "../util/fs.ts";
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./assert.ts";
import {
  BUSYBOX_IMAGE as BUSYBOX,
  busyboxDaemon,
  killDuringPull,
  ok,
  reapContainers,
  scrape,
  shimPids,
  showSuppressed,
  socketClient,
  startDaemon,
  tasks,
  type TestDaemon,
  waitFor,
} from "./daemon.ts";
import { pushFixture } from "./fixtures/mod.ts";
import { ownCgroups, requires } from "./harness.ts";
import { blobStall, startProxy, startRegistry } from "./registry.ts";
import { type TaskInfo, TugClient } from "../mod.ts";

const ignore = requires("root", "tug", "registry", "skopeo", "umoci", "busybox", "cgroup1");

function alive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

async function logText(daemon: TestDaemon, id: string): Promise<string> {
  const r = await daemon.tug(["containers", "logs", id]);
  assertEquals(r.code, 0, r.stderr);
  return r.stdout + r.stderr;
}

/** The pids cgroup of a container of the test daemon (v1 here). */
function pidsCgroup(daemon: TestDaemon, id: string): string | undefined {
  const pids = ownCgroups().get("pids");
  return pids ? join(pids, daemon.cgroupParent, "default", id) : undefined;
}

Deno.test({
  name:
    "50 containers started at once through the API all run, none lost or duplicated, all removed cleanly",
  ignore,
  fn: showSuppressed(async () => {
    await using registry = await startRegistry();
    await using daemon = await busyboxDaemon(registry);
    using client = new TugClient({ address: daemon.address });
    const ids = Array.from({ length: 50 }, (_, i) => `many-${i}`);

    const results = await Promise.allSettled(ids.map(async (id) => {
      await client.containers.create({
        id,
        image: BUSYBOX,
        args: ["sh", "-c", `echo I am ${id}; exec sleep 1000`],
      });
      return await client.tasks.start(id);
    }));
    const failed = results.flatMap((r, i) =>
      r.status === "rejected" ? [`${ids[i]}: ${r.reason}`] : []
    );
    assertEquals(failed, [], "every create and start succeeded");

    const listed = await client.tasks.list();
    assertEquals(listed.map((t) => t.id).sort(), [...ids].sort(), "every task once");
    assert(
      listed.every((t) => t.status === "running"),
      JSON.stringify(listed.filter((t) => t.status !== "running")),
    );
    assertEquals(new Set(listed.map((t) => t.pid)).size, 50, "50 distinct processes");
    assert(listed.every((t) => alive(t.pid)), "every init runs on the host");
    const containers = await client.containers.list();
    assertEquals(containers.map((c) => c.id).sort(), [...ids].sort(), "every container once");
    assert(containers.every((c) => c.task?.status === "running"));
    for (const t of listed) {
      const cg = pidsCgroup(daemon, t.id);
      if (cg) {
        assertStringIncludes(
          Deno.readTextFileSync(join(cg, "cgroup.procs")),
          `${t.pid}\n`,
          `${t.id}'s cgroup`,
        );
      }
    }
    assertEquals(shimPids(daemon.dir).length, 1, "the namespace's containers share one shim");
    for (const id of ids) {
      await waitFor(`${id}'s log`, async () => {
        const lines = [];
        for await (const e of client.containers.logs(id)) lines.push(e.log);
        return lines.join("") === `I am ${id}\n` ? true : undefined;
      }, 60_000);
    }
    const metrics = await scrape(daemon);
    const seen = new Set(
      [...metrics.matchAll(/^tug_container_pids\{[^}]*container_id="([^"]+)"/gm)].map((m) => m[1]),
    );
    assertEquals(seen.size, 50, "per-container metrics for each");

    const removed = await Promise.allSettled(
      ids.map((id) => client.containers.delete(id, { force: true })),
    );
    const notRemoved = removed.flatMap((r, i) =>
      r.status === "rejected" ? [`${ids[i]}: ${r.reason}`] : []
    );
    assertEquals(notRemoved, [], "every container removed");
    assertEquals(await client.containers.list(), []);
    assertEquals(await client.tasks.list(), []);
    assert(listed.every((t) => !alive(t.pid)), "no init left");
    for (const id of ids) {
      const cg = pidsCgroup(daemon, id);
      assert(!cg || !exists(cg), `${id}'s cgroup removed`);
    }
    const snapshots = await client.snapshots.list();
    assertEquals(
      snapshots.filter((s) => s.kind !== "committed").map((s) => s.name),
      [],
      "no writable snapshot left",
    );
  }),
});

type Listed = { id: string; task?: TaskInfo };

/** The containers and tasks a restarted daemon lists: each once, only those asked for, and every one can be inspected. */
async function consistent(daemon: TestDaemon, asked: string[]): Promise<Listed[]> {
  const containers = JSON.parse(await ok(daemon, ["containers", "list", "--json"])) as Listed[];
  const names = containers.map((c) => c.id);
  assertEquals(new Set(names).size, names.length, "no container twice");
  assert(names.every((n) => asked.includes(n)), `only the containers asked for: ${names}`);
  const listed = await tasks(daemon);
  assertEquals(new Set(listed.map((t) => t.id)).size, listed.length, "no task twice");
  for (const t of listed) {
    assert(names.includes(t.id), `task ${t.id} has its container`);
    assert(["created", "running"].includes(t.status), `${t.id}: ${t.status}`);
    if (t.status === "running") {
      assert(alive(t.pid), `${t.id}'s process runs`);
      assertStringIncludes(await ok(daemon, ["tasks", "ps", "--json", t.id]), String(t.pid));
    }
  }
  for (const c of containers) {
    const info = JSON.parse(await ok(daemon, ["containers", "info", c.id]));
    assertEquals(info.spec.process.args, ["sleep", "1000"]);
  }
  return containers;
}

Deno.test({
  name:
    "kill -9 of the daemon during container creates and starts: after each restart the state is consistent and the next commands work",
  ignore,
  fn: showSuppressed(async () => {
    await using registry = await startRegistry();
    await using first = await busyboxDaemon(registry);
    const ids = Array.from({ length: 16 }, (_, i) => `boot-${i}`);

    // Killed once half the creates are done: creates, snapshots and starts in flight.
    {
      using client = new TugClient({ address: first.address });
      let created = 0;
      let killed: Promise<void> | undefined;
      await Promise.allSettled(ids.map(async (id) => {
        await client.containers.create({ id, image: BUSYBOX, args: ["sleep", "1000"] });
        if (++created === ids.length / 2) killed = first.kill9();
        await client.tasks.start(id);
      }));
      await killed;
    }
    const second = await first.restart();
    const afterCreates = await consistent(second, ids);
    assert(afterCreates.length >= ids.length / 2, "the creates that answered are kept");

    // Killed once the first of the remaining starts is done: starts in flight.
    const reported: string[] = [];
    {
      using client = new TugClient({ address: second.address });
      const pending = afterCreates.filter((c) => !c.task).map((c) => c.id);
      const starts = pending.map(async (id) => {
        await client.tasks.start(id);
        reported.push(id);
      });
      await Promise.race(starts).catch(() => {});
      await second.kill9();
      await Promise.allSettled(starts);
    }
    const third = await first.restart();
    const afterStarts = await consistent(third, ids);
    const running = await tasks(third);
    for (const id of reported) {
      assertEquals(
        running.find((t) => t.id === id)?.status,
        "running",
        `${id}, reported started, runs`,
      );
    }
    // What a kill cut short can be started now.
    for (const c of afterStarts) {
      if (c.task?.status === "created") await ok(third, ["tasks", "delete", "-f", c.id]);
      if (c.task?.status !== "running") await ok(third, ["tasks", "start", "-d", c.id]);
    }
    const all = await tasks(third);
    assertEquals(all.length, afterStarts.length);
    assert(all.every((t) => t.status === "running" && alive(t.pid)));
    for (
      const args of [["images", "ls"], ["snapshots", "ls"], ["content", "ls"], ["system", "df"], [
        "info",
      ]]
    ) {
      await ok(third, args);
    }
    assertEquals((await ok(third, ["images", "ls", "-q"])).trim(), BUSYBOX);
    await ok(third, ["containers", "rm", "-f", ...afterStarts.map((c) => c.id)]);
    assertEquals(await ok(third, ["containers", "ls", "-q"]), "");
    const after = await third.tug(["run", "--rm", BUSYBOX, "after", "echo", "still works"]);
    assertEquals([after.code, after.stdout], [0, "still works\n"], after.stderr);
  }),
});

Deno.test({
  name:
    "kill -9 of the daemon during a pull: shims keep containers running and logging, exits meanwhile are kept, and a restart lists them",
  ignore,
  fn: showSuppressed(async () => {
    await using registry = await startRegistry();
    await pushFixture(registry, "busybox", { repo: "library/busybox" });
    await pushFixture(registry, "large", { repo: "library/big" });
    const stall = blobStall(1 << 20, false);
    await using proxy = startProxy(registry.url, stall);
    await using first = await startDaemon({ registry: proxy });
    const dir = first.dir;
    await ok(first, ["images", "pull", BUSYBOX]);
    const loop = "echo ready; while true; do sleep 0.05; done";
    await ok(first, [
      "run",
      "-d",
      BUSYBOX,
      "keeps",
      "sh",
      "-c",
      `trap "echo poked" USR1; ${loop}`,
    ]);
    await ok(first, [
      "run",
      "-d",
      BUSYBOX,
      "exits",
      "sh",
      "-c",
      `trap "echo bye; exit 42" USR1; ${loop}`,
    ]);
    for (const id of ["keeps", "exits"]) {
      await waitFor(
        `${id} ready`,
        async () => (await logText(first, id)).includes("ready") ? true : undefined,
        60_000,
      );
    }
    const before = await tasks(first);
    const pid = (id: string) => before.find((t) => t.id === id)!.pid;

    stall.on = true;
    const pull = await killDuringPull(first, "big");
    assertStringIncludes(pull.out, "downloading");
    assert(pull.code !== 0, "the pull fails when the daemon dies");

    // The daemon is gone: the CLI says so, the containers live on, and their shim keeps logging.
    const down = await first.tug(["containers", "ls"], { timeout: 10_000 });
    assertEquals(down.code, 1);
    assertStringIncludes(
      down.stderr,
      `Cannot connect to the tug daemon at ${first.address}: is it running?`,
    );
    assert(alive(pid("keeps")) && alive(pid("exits")), "containers survive the daemon");
    const logFile = (id: string) => join(dir, "root", "logs", "default", id, "container.log");
    Deno.kill(pid("keeps"), "SIGUSR1");
    Deno.kill(pid("exits"), "SIGUSR1");
    await waitFor("exits to exit", () => alive(pid("exits")) ? undefined : true, 60_000);
    for (const [id, text] of [["keeps", "poked"], ["exits", "bye"]] as const) {
      await waitFor(
        `${text} in ${id}'s log file`,
        () => Deno.readTextFileSync(logFile(id)).includes(text) ? true : undefined,
        60_000,
      );
    }

    stall.on = false;
    const second = await first.restart();
    const after = await tasks(second);
    const keeps = after.find((t) => t.id === "keeps");
    const exits = after.find((t) => t.id === "exits");
    assertEquals(
      [keeps?.status, keeps?.pid],
      ["running", pid("keeps")],
      "keeps is listed as running",
    );
    assertEquals(exits?.status, "stopped");
    assertEquals(
      exits?.exit?.exitCode,
      42,
      "the exit code of a container that exited meanwhile is kept",
    );
    assert(!exits?.exit?.unknown);
    assertMatch(await ok(second, ["containers", "ls"]), /^exits\s+\S+\s+stopped \(42\)/m);
    assertStringIncludes(await logText(second, "keeps"), "poked");
    assertStringIncludes(await logText(second, "exits"), "bye");
    // The reconnected shim serves the running container.
    const exec = await second.tug([
      "containers",
      "exec",
      "--exec-id",
      "after",
      "keeps",
      "echo",
      "reconnected",
    ]);
    assertEquals([exec.code, exec.stdout], [0, "reconnected\n"], exec.stderr);

    assertEquals(
      (await ok(second, ["images", "ls", "-q"])).trim(),
      BUSYBOX,
      "no half-recorded image",
    );
    for (
      const args of [["content", "ls"], ["snapshots", "ls"], ["images", "usage"], [
        "system",
        "df",
      ]]
    ) {
      await ok(second, args);
    }
    await ok(second, ["images", "pull", "big"]);
    assertEquals((await ok(second, ["images", "ls", "-q"])).split("\n").filter(Boolean).sort(), [
      "docker.io/library/big:latest",
      BUSYBOX,
    ]);
    await ok(second, ["tasks", "kill", "-s", "KILL", "keeps"]);
    await waitFor(
      "keeps to stop",
      async () =>
        (await tasks(second)).find((t) => t.id === "keeps")?.status === "stopped"
          ? true
          : undefined,
      60_000,
    );
    await ok(second, ["containers", "rm", "keeps", "exits"]);
  }),
});

Deno.test({
  name:
    "after a reboot (runtime state lost, root kept) restart policies start their containers again",
  ignore,
  fn: showSuppressed(async () => {
    await using registry = await startRegistry();
    await using first = await busyboxDaemon(registry);
    const dir = first.dir;
    const loop = ["sh", "-c", "echo up; while true; do sleep 0.05; done"];
    await ok(first, ["run", "-d", "--restart", "always", BUSYBOX, "always", ...loop]);
    await ok(first, ["run", "-d", "--restart", "unless-stopped", BUSYBOX, "unless", ...loop]);
    await ok(first, ["run", "-d", "--restart", "unless-stopped", BUSYBOX, "stopped", ...loop]);
    await ok(first, ["run", "-d", BUSYBOX, "plain", ...loop]);
    await ok(first, ["tasks", "kill", "-s", "KILL", "stopped"]);
    await waitFor(
      "stopped to stop",
      async () =>
        (await tasks(first)).find((t) => t.id === "stopped")?.status === "stopped"
          ? true
          : undefined,
      60_000,
    );

    // The reboot: every process goes, /run goes, /var/lib stays.
    await first.kill9();
    assertEquals(await reapContainers(dir, { graceful: false }), []);
    await Deno.remove(join(dir, "state"), { recursive: true });

    const second = await first.restart();
    const after = await waitFor("the restart policies to start their containers", async () => {
      const t = await tasks(second);
      return ["always", "unless"].every((id) => t.find((x) => x.id === id)?.status === "running")
        ? t
        : undefined;
    }, 60_000);
    assertEquals(
      after.map((t) => t.id).sort(),
      ["always", "unless"],
      "only what the policies want running runs",
    );
    for (const t of after) assert(alive(t.pid));
    assertEquals(
      (await ok(second, ["containers", "ls", "-q"])).split("\n").filter(Boolean).sort(),
      ["always", "plain", "stopped", "unless"],
      "every record survives",
    );
    // The ones left down start by hand.
    await ok(second, ["containers", "start", "plain"]);
    assertEquals((await tasks(second)).find((t) => t.id === "plain")?.status, "running");
  }),
});

Deno.test({
  name: "malformed container and task requests get 4xx errors and change nothing",
  ignore,
  fn: showSuppressed(async () => {
    await using registry = await startRegistry();
    await using daemon = await busyboxDaemon(registry);
    await ok(daemon, ["run", "-d", BUSYBOX, "keep", "sleep", "1000"]);
    const before = JSON.parse(await ok(daemon, ["containers", "info", "keep"]));
    const snapshotsBefore = await ok(daemon, ["snapshots", "ls", "--json"]);
    const client = socketClient(daemon.address);
    const send = async (method: string, path: string, body?: BodyInit) => {
      const res = await fetch(`http://127.0.0.1${path}`, {
        method,
        client,
        ...(body !== undefined ? { body } : {}),
      });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : undefined };
    };
    const create = (fields: Record<string, unknown>) =>
      JSON.stringify({ id: "x", image: BUSYBOX, ...fields });
    try {
      const cases: Array<[string, string, BodyInit | undefined, number, string]> = [
        ["POST", "/v1/containers", "{not json", 400, "Invalid request body"],
        ["POST", "/v1/containers", "", 400, "empty"],
        ["POST", "/v1/containers", "[]", 400, "expected a JSON object"],
        ["POST", "/v1/containers", JSON.stringify({ id: 5, image: BUSYBOX }), 400, "field id"],
        ["POST", "/v1/containers", JSON.stringify({ id: "x" }), 400, "field image"],
        ["POST", "/v1/containers", create({ args: "echo hi" }), 400, "field args"],
        ["POST", "/v1/containers", create({ env: [1] }), 400, "field env"],
        ["POST", "/v1/containers", create({ memoryLimit: "lots" }), 400, "field memoryLimit"],
        ["POST", "/v1/containers", create({ memoryLimit: -1 }), 400, "field memoryLimit"],
        ["POST", "/v1/containers", create({ cpus: 0 }), 400, "field cpus"],
        ["POST", "/v1/containers", create({ netHost: "yes" }), 400, "field netHost"],
        ["POST", "/v1/containers", create({ labels: ["a"] }), 400, "field labels"],
        [
          "POST",
          "/v1/containers",
          create({ mounts: [{ type: "bind", destination: "rel" }] }),
          400,
          "absolute",
        ],
        ["POST", "/v1/containers", create({ restart: "sometimes" }), 400, "Invalid --restart"],
        ["POST", "/v1/containers", create({ seccompProfile: 7 }), 400, "seccompProfile"],
        ["POST", "/v1/containers", create({ bogus: true }), 400, "bogus"],
        // A NUL byte cut a string short in the kernel; tug's own labels bypassed their checks; a
        // limit under 6 MiB OOM-killed the init while it set up (a helper's probes).
        [
          "POST",
          "/v1/containers",
          create({ env: ["A=x\u0000y"] }),
          400,
          "env[0]: it contains a NUL",
        ],
        ["POST", "/v1/containers", create({ cwd: "/tmp/\u0000x" }), 400, "NUL byte"],
        ["POST", "/v1/containers", create({ memoryLimit: 1024 }), 400, "memoryLimit"],
        [
          "POST",
          "/v1/containers",
          create({ labels: { "io.tug.log.max-size": "1" } }),
          400,
          "tug sets it itself",
        ],
        [
          "POST",
          "/v1/containers",
          JSON.stringify({ id: "../x", image: BUSYBOX }),
          400,
          "Invalid container id",
        ],
        ["POST", "/v1/containers", JSON.stringify({ id: "", image: BUSYBOX }), 400, "id"],
        [
          "POST",
          "/v1/containers",
          JSON.stringify({ id: "y".repeat(200), image: BUSYBOX }),
          400,
          "Invalid container id",
        ],
        ["POST", "/v1/containers", create({ args: ["x".repeat(2 << 20)] }), 413, "too large"],
        [
          "POST",
          "/v1/containers",
          JSON.stringify({ id: "keep", image: BUSYBOX }),
          409,
          "already exists",
        ],
        [
          "POST",
          "/v1/containers",
          JSON.stringify({ id: "z", image: "docker.io/library/none:latest" }),
          404,
          "not found",
        ],
        ["GET", "/v1/containers/..%2Fx", undefined, 400, "Invalid container id"],
        ["DELETE", "/v1/containers/a%2Fb", undefined, 400, "Invalid container id"],
        ["GET", "/v1/containers/nope", undefined, 404, "does not exist"],
        ["GET", "/v1/containers/keep/logs?tail=-1", undefined, 400, "tail"],
        ["GET", "/v1/containers/keep/logs?since=soon", undefined, 400, "since"],
        ["POST", "/v1/tasks/keep/start", "{", 400, "Invalid request body"],
        [
          "POST",
          "/v1/tasks/keep/start",
          JSON.stringify({ stdout: "relative/fifo" }),
          400,
          "absolute path",
        ],
        ["POST", "/v1/tasks/keep/kill", JSON.stringify({ signal: {} }), 400, "field signal"],
        ["POST", "/v1/tasks/keep/kill", JSON.stringify({ signal: "SIGBOGUS" }), 400, "SIGBOGUS"],
        ["POST", "/v1/tasks/keep/kill", JSON.stringify({ all: "yes" }), 400, "field all"],
        [
          "POST",
          "/v1/tasks/keep/exec",
          JSON.stringify({ execId: "e", args: [] }),
          400,
          "needs a command",
        ],
        [
          "POST",
          "/v1/tasks/keep/exec",
          JSON.stringify({ execId: "../e", args: ["true"] }),
          400,
          "Invalid exec id",
        ],
        [
          "POST",
          "/v1/tasks/keep/exec",
          JSON.stringify({ execId: "e", args: ["true"], cwd: "tmp" }),
          400,
          "cwd",
        ],
        [
          "POST",
          "/v1/tasks/keep/exec",
          JSON.stringify({ execId: "e", args: "true" }),
          400,
          "field args",
        ],
        ["POST", "/v1/tasks/keep/resize", JSON.stringify({ rows: 0, cols: 80 }), 400, "rows"],
        ["POST", "/v1/tasks/keep/wait", JSON.stringify({ execId: 3 }), 400, "execId"],
        ["POST", "/v1/tasks/nope/kill", "{}", 404, "does not exist"],
        ["DELETE", "/v1/tasks/keep", undefined, 412, "kill it first"],
        ["DELETE", "/v1/containers/keep", undefined, 412, "running"],
      ];
      for (const [method, path, body, status, message] of cases) {
        const r = await send(method, path, body);
        const what = `${method} ${path} ${String(body).slice(0, 80)}`;
        assertEquals(r.status, status, `${what}: ${JSON.stringify(r.body)}`);
        assertStringIncludes(r.body.error.message, message, what);
        assert(typeof r.body.error.code === "string");
      }
      const after = JSON.parse(await ok(daemon, ["containers", "info", "keep"]));
      assertEquals(after, before, "the container is as it was");
      assertEquals(await ok(daemon, ["containers", "ls", "-q"]), "keep\n");
      assertEquals((await tasks(daemon)).map((t) => [t.id, t.status]), [["keep", "running"]]);
      assertEquals(await ok(daemon, ["snapshots", "ls", "--json"]), snapshotsBefore);
    } finally {
      client.close();
    }
  }),
});
