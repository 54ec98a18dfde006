/**
 * Containers and tasks through the real CLI and daemon: `run` and its exit
 * codes and stdio, logs, signals, pause and resume, ps, metrics, exec,
 * clear errors for wrong lifecycle states and bad flags, OOM kills, restart
 * policies and the events of a container's life. The image is the
 * `busybox` fixture (every applet, /etc/passwd with root and nobody),
 * pulled as docker.io/library/busybox:latest from a test registry.
 */
import { join } from "node:path";
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./assert.ts";
import {
  BUSYBOX_IMAGE as BUSYBOX,
  busyboxDaemon,
  ok,
  shimPids,
  showSuppressed,
  type TestDaemon,
  waitFor,
  waitForSubscribers,
} from "./daemon.ts";
import { pushFixture } from "./fixtures/mod.ts";
import { ownCgroups, requires, run, TUG, withTempDir } from "./harness.ts";
import { startRegistry, type TestRegistry } from "./registry.ts";

const ignore = requires("root", "tug", "registry", "skopeo", "umoci", "busybox", "cgroup1");

interface Task {
  id: string;
  pid: number;
  status: string;
  exit?: { exitCode: number; oomKilled?: boolean };
}

async function fails(daemon: TestDaemon, args: string[], message: string): Promise<void> {
  const r = await daemon.tug(args);
  assert(r.code !== 0, `tug ${args.join(" ")} should fail; it printed ${r.stdout}`);
  assertStringIncludes(r.stderr, message, `tug ${args.join(" ")}`);
  assertMatch(r.stderr, /^tug: /m, "errors are prefixed with tug:");
}

async function task(daemon: TestDaemon, id: string): Promise<Task | undefined> {
  const tasks = JSON.parse(await ok(daemon, ["tasks", "list", "--json"])) as Task[];
  return tasks.find((t) => t.id === id);
}

function stopped(daemon: TestDaemon, id: string): Promise<Task> {
  return waitFor(`${id} to stop`, async () => {
    const t = await task(daemon, id);
    return t?.status === "stopped" ? t : undefined;
  });
}

async function logs(
  daemon: TestDaemon,
  id: string,
  ...flags: string[]
): Promise<{ stdout: string; stderr: string }> {
  const r = await daemon.tug(["containers", "logs", ...flags, id]);
  assertEquals(r.code, 0, r.stderr);
  return r;
}

function logged(daemon: TestDaemon, id: string, text: string): Promise<string> {
  return waitFor(`${JSON.stringify(text)} in the logs of ${id}`, async () => {
    const r = await logs(daemon, id);
    return (r.stdout + r.stderr).includes(text) ? r.stdout + r.stderr : undefined;
  });
}

async function ids(daemon: TestDaemon): Promise<string[]> {
  return (await ok(daemon, ["containers", "list", "-q"])).split("\n").filter(Boolean);
}

/** A registry with the busybox fixture and a daemon that pulled it. */
async function registryAndDaemon(
  containersConfig?: string,
): Promise<{ registry: TestRegistry; daemon: TestDaemon } & AsyncDisposable> {
  const registry = await startRegistry();
  try {
    const daemon = await busyboxDaemon(registry, containersConfig ? { containersConfig } : {});
    return {
      registry,
      daemon,
      async [Symbol.asyncDispose]() {
        try {
          await daemon.cleanup();
        } finally {
          await registry[Symbol.asyncDispose]();
        }
      },
    };
  } catch (err) {
    await registry[Symbol.asyncDispose]();
    throw err;
  }
}

Deno.test({
  name:
    "run: exit codes propagate, stdout and stderr stay apart, -i pipes stdin, flags reach the process",
  ignore,
  fn: showSuppressed(async () => {
    await using env = await registryAndDaemon();
    const { daemon } = env;

    const seven = await daemon.tug(["run", "--rm", BUSYBOX, "r1", "sh", "-c", "exit 7"]);
    assertEquals(seven.code, 7, seven.stderr);
    const zero = await daemon.tug(["run", "--rm", BUSYBOX, "r2", "true"]);
    assertEquals(zero.code, 0, zero.stderr);

    const split = await daemon.tug([
      "run",
      "--rm",
      BUSYBOX,
      "r3",
      "sh",
      "-c",
      "echo out; echo err >&2; echo out2",
    ]);
    assertEquals([split.code, split.stdout, split.stderr], [0, "out\nout2\n", "err\n"]);

    const piped = await daemon.tug(["run", "--rm", "-i", BUSYBOX, "r4", "cat"], {
      stdin: "hi\nthere\n",
    });
    assertEquals([piped.code, piped.stdout], [0, "hi\nthere\n"], piped.stderr);
    const counted = await daemon.tug(["run", "--rm", "-i", BUSYBOX, "r5", "wc", "-c"], {
      stdin: "x".repeat(200_000),
    });
    assertEquals(counted.stdout.trim(), "200000", "a large stdin arrives whole");
    const closed = await daemon.tug(["run", "--rm", BUSYBOX, "r6", "cat"], { stdin: "ignored\n" });
    assertEquals([closed.code, closed.stdout], [0, ""], "without -i the process reads /dev/null");

    const flags = await daemon.tug([
      "run",
      "--rm",
      "--env",
      "GREETING=hello world",
      "--cwd",
      "/var/www",
      "--user",
      "nobody",
      "--hostname",
      "box",
      BUSYBOX,
      "r7",
      "sh",
      "-c",
      'echo "$GREETING"; pwd; id -u; id -g; hostname; echo "$PATH"',
    ]);
    assertEquals(flags.code, 0, flags.stderr);
    assertEquals(
      flags.stdout,
      "hello world\n/var/www\n65534\n65534\nbox\n/usr/sbin:/usr/bin:/sbin:/bin\n",
    );

    const ro = await daemon.tug(["run", "--rm", "--read-only", BUSYBOX, "r8", "touch", "/x"]);
    assert(ro.code !== 0, "a read-only root refuses writes");
    assertStringIncludes(ro.stderr, "Read-only file system");

    // An image the namespace lacks is pulled first.
    const alpine = await pushFixture(env.registry, "alpine", { repo: "library/alpine" });
    assert(alpine.endsWith("library/alpine:latest"));
    const pulled = await daemon.tug([
      "run",
      "--rm",
      "docker.io/library/alpine:latest",
      "r9",
      "echo",
      "pulled",
    ]);
    assertEquals(pulled.code, 0, pulled.stderr);
    assertEquals(pulled.stdout, "pulled\n");
    assertStringIncludes(pulled.stderr, "docker.io/library/alpine:latest: not present, pulling");

    assertEquals(await ids(daemon), [], "--rm removed every container");
    assertEquals(JSON.parse(await ok(daemon, ["tasks", "list", "--json"])), []);
  }),
});

/** A command line run by util-linux script under a pseudo-terminal, driven through script's stdin. */
interface PtySession {
  /** Everything the terminal showed so far. */
  output(): string;
  /** Waits until the terminal showed `text`. */
  waitFor(text: string): Promise<unknown>;
  /** Types `text` into the terminal. */
  type(text: string): Promise<void>;
  /** The exit code of the command (script -e). */
  status: Promise<number>;
}

function ptySession(command: string): PtySession & AsyncDisposable {
  const child = new Deno.Command("script", {
    args: ["-qec", command, "/dev/null"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  let out = "";
  const reading = (async () => {
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) out += chunk;
  })();
  const errors = new Response(child.stderr).text();
  const writer = child.stdin.getWriter();
  // script's stdin stays open until the command exits: at end of input script would type an
  // end-of-file character into the terminal.
  const status = child.status.then(async (s) => {
    clearTimeout(timer);
    await reading;
    out += await errors;
    await writer.close().catch(() => {});
    return s.code;
  });
  return {
    output: () => out,
    waitFor: (text) =>
      waitFor(
        `${JSON.stringify(text)} on the terminal (it shows ${JSON.stringify(out)})`,
        () => Promise.resolve(out.includes(text) ? true : undefined),
      ),
    type: (text) => writer.write(new TextEncoder().encode(text)),
    status,
    async [Symbol.asyncDispose]() {
      try {
        child.kill("SIGKILL");
      } catch {
        // exited
      }
      await status;
    },
  };
}

Deno.test({
  name:
    "run -t: a terminal whose size follows the user's, Ctrl-C reaches the process, Ctrl-P Ctrl-Q detaches",
  ignore,
  fn: showSuppressed(async () => {
    await using env = await registryAndDaemon();
    const { daemon } = env;
    const cli = `${TUG} -a ${daemon.address}`;

    // The terminal's size reaches the container, and so does a change (SIGWINCH).
    await withTempDir(async (dir) => {
      const waitSize = (size: string) =>
        `while ! stty size 2>/dev/null | grep -qx "${size}"; do sleep 0.05; done; echo "size ${size}"`;
      await Deno.writeTextFile(
        join(dir, "outer.sh"),
        `stty rows 40 cols 100
${cli} run --rm -t ${BUSYBOX} w1 sh -c '${waitSize("40 100")}; ${waitSize("50 120")}' </dev/tty &
pid=$!
until ${cli} containers logs w1 2>/dev/null | grep -q "size 40 100"; do sleep 0.05; done
stty rows 50 cols 120
kill -WINCH $pid
wait $pid
`,
      );
      await using pty = ptySession(`sh ${join(dir, "outer.sh")}`);
      assertEquals(await pty.status, 0, pty.output());
      assertMatch(pty.output(), /size 40 100\r*\n[^]*size 50 120\r*\n/);
    });

    // Ctrl-C goes through the terminal to the foreground process, as a SIGINT.
    {
      await using pty = ptySession(
        `${cli} run --rm -t ${BUSYBOX} c1 sh -c 'trap "echo caught INT; exit 9" INT; echo ready; while true; do sleep 0.05; done'`,
      );
      await pty.waitFor("ready");
      await pty.type("\x03");
      assertEquals(await pty.status, 9, pty.output());
      assertStringIncludes(pty.output(), "caught INT");
    }

    // Ctrl-P Ctrl-Q detaches: the CLI exits 0, the container keeps running, and its input was its own.
    {
      await using pty = ptySession(`${cli} run -t ${BUSYBOX} d1 sh`);
      await pty.waitFor("# ");
      await pty.type("echo typed-$((6*7))\n");
      await pty.waitFor("typed-42");
      await pty.type("\x10\x11");
      assertEquals(await pty.status, 0, pty.output());
    }
    assertEquals((await task(daemon, "d1"))?.status, "running", "detached, not stopped");
    assertStringIncludes(
      (await logs(daemon, "d1")).stdout,
      "typed-42",
      "the terminal's output is logged",
    );
    await ok(daemon, ["tasks", "kill", "-s", "KILL", "d1"]);
    assertEquals((await stopped(daemon, "d1")).exit?.exitCode, 137);
    await ok(daemon, ["containers", "rm", "d1"]);
  }),
});

Deno.test({
  name: "logs: --tail, --since and --timestamps; -f follows until the task exits",
  ignore,
  fn: showSuppressed(async () => {
    await using env = await registryAndDaemon();
    const { daemon } = env;
    await ok(daemon, [
      "run",
      "-d",
      BUSYBOX,
      "l1",
      "sh",
      "-c",
      "for i in 1 2 3 4 5; do echo line $i; done; while [ ! -e /tmp/go ]; do sleep 0.05; done; echo oops >&2; while [ ! -e /tmp/stop ]; do sleep 0.05; done; echo bye",
    ]);
    // stderr only once stdout is in the log: the order of the lines is known.
    await logged(daemon, "l1", "line 5");
    await ok(daemon, ["containers", "exec", "--exec-id", "go", "l1", "touch", "/tmp/go"]);
    await logged(daemon, "l1", "oops");

    const all = await logs(daemon, "l1");
    assertEquals(all.stdout, "line 1\nline 2\nline 3\nline 4\nline 5\n");
    assertEquals(all.stderr, "oops\n");
    const tail = await logs(daemon, "l1", "--tail", "2");
    assertEquals([tail.stdout, tail.stderr], ["line 5\n", "oops\n"]);
    assertEquals((await logs(daemon, "l1", "--tail", "0")).stdout, "");
    const stamped = await logs(daemon, "l1", "-t", "--tail", "3");
    assertMatch(stamped.stdout, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z line 4\n\S+ line 5\n$/);
    assertEquals((await logs(daemon, "l1", "--since", "1h")).stdout.split("\n").length, 6);
    const future = await logs(daemon, "l1", "--since", "2099-01-01T00:00:00Z");
    assertEquals([future.stdout, future.stderr], ["", ""]);
    await fails(daemon, ["containers", "logs", "--tail", "abc", "l1"], "Invalid --tail");
    await fails(
      daemon,
      ["containers", "logs", "--since", "yesterday-ish", "l1"],
      "Invalid --since",
    );

    // -f prints what is there, then what comes, and ends when the task exits.
    const follow = new Deno.Command(TUG, {
      args: ["-a", daemon.address, "containers", "logs", "-f", "--tail", "1", "l1"],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const timer = setTimeout(() => follow.kill("SIGKILL"), 30_000);
    const reader = follow.stderr.pipeThrough(new TextDecoderStream()).getReader();
    let err = "";
    while (!err.includes("oops")) {
      const { value, done } = await reader.read();
      if (done) break;
      err += value;
    }
    reader.releaseLock();
    await ok(daemon, ["containers", "exec", "--exec-id", "stop", "l1", "touch", "/tmp/stop"]);
    const [status, out] = await Promise.all([
      follow.status,
      new Response(follow.stdout).text(),
      follow.stderr.cancel().catch(() => {}),
    ]);
    clearTimeout(timer);
    assertEquals(status.code, 0, "follow ends by itself when the task exits");
    assertEquals(out, "bye\n");
    assertEquals((await stopped(daemon, "l1")).exit?.exitCode, 0);
    // The log outlives the task.
    assertStringIncludes((await logs(daemon, "l1")).stdout, "line 1\n");
  }),
});

Deno.test({
  name:
    "tasks: kill with a signal and --all, pause and resume, ps, metrics, exec with flags and -d",
  ignore,
  fn: showSuppressed(async () => {
    await using env = await registryAndDaemon();
    const { daemon } = env;

    // A signal reaches the container's init (which handles it).
    await ok(daemon, [
      "run",
      "-d",
      BUSYBOX,
      "k1",
      "sh",
      "-c",
      'trap "echo got USR1; exit 3" USR1; echo ready; while true; do sleep 0.05; done',
    ]);
    await logged(daemon, "k1", "ready");
    await ok(daemon, ["tasks", "kill", "-s", "USR1", "k1"]);
    assertEquals((await stopped(daemon, "k1")).exit?.exitCode, 3);
    await logged(daemon, "k1", "got USR1");
    await fails(daemon, ["tasks", "kill", "k1"], "not running");
    await fails(daemon, ["tasks", "kill", "-s", "SIGNOPE", "k1"], "SIGNOPE");

    // --all reaches every process: TERM kills the sleeps; init (no handler) outlives them, then ends.
    await ok(daemon, [
      "run",
      "-d",
      BUSYBOX,
      "k2",
      "sh",
      "-c",
      "sleep 1000 & sleep 1000 & echo ready; wait; echo children gone",
    ]);
    await logged(daemon, "k2", "ready");
    const pids = JSON.parse(await ok(daemon, ["tasks", "ps", "--json", "k2"])) as number[];
    assertEquals(pids.length, 3, `init and two sleeps: ${pids}`);
    const k2 = (await task(daemon, "k2"))!;
    assert(pids.includes(k2.pid), "ps lists the init's host pid");
    assertMatch(await ok(daemon, ["tasks", "ps", "k2"]), new RegExp(`^PID\\n(\\d+\\n){3}$`));
    await ok(daemon, ["tasks", "kill", "--all", "k2"]);
    assertEquals((await stopped(daemon, "k2")).exit?.exitCode, 0);
    await logged(daemon, "k2", "children gone");

    // pause and resume: the freezer holds the task, the states say so.
    await ok(daemon, [
      "run",
      "-d",
      BUSYBOX,
      "p1",
      "sh",
      "-c",
      "echo ready; while true; do sleep 0.05; done",
    ]);
    await logged(daemon, "p1", "ready");
    const freezer = ownCgroups().get("freezer");
    const state = freezer
      ? join(freezer, daemon.cgroupParent, "default", "p1", "freezer.state")
      : undefined;
    await ok(daemon, ["tasks", "pause", "p1"]);
    assertEquals((await task(daemon, "p1"))?.status, "paused");
    assertMatch(await ok(daemon, ["containers", "list"]), /^p1\s+\S+\s+paused\s/m);
    if (state) assertEquals(Deno.readTextFileSync(state).trim(), "FROZEN");
    await fails(daemon, ["containers", "exec", "--exec-id", "no", "p1", "true"], "paused");
    await ok(daemon, ["tasks", "resume", "p1"]);
    assertEquals((await task(daemon, "p1"))?.status, "running");
    if (state) assertEquals(Deno.readTextFileSync(state).trim(), "THAWED");

    // metrics from the task's cgroups.
    const m = JSON.parse(await ok(daemon, ["tasks", "metrics", "--json", "p1"]));
    assert(m.memory.usage > 0, `memory usage: ${JSON.stringify(m.memory)}`);
    assert(m.pids.current >= 1, `pids: ${JSON.stringify(m.pids)}`);
    assert(m.cpu.usageNs >= 0);
    const table = await ok(daemon, ["tasks", "metrics", "p1"]);
    assertMatch(table, /^METRIC\s+VALUE$/m);
    assertMatch(table, /^memory usage\s+\S+/m);
    assertMatch(table, /^pids\s+\d+/m);

    // exec: exit code, flags, -d, duplicate ids.
    const five = await daemon.tug([
      "containers",
      "exec",
      "--exec-id",
      "e5",
      "p1",
      "sh",
      "-c",
      "exit 5",
    ]);
    assertEquals(five.code, 5);
    const flags = await daemon.tug([
      "containers",
      "exec",
      "--exec-id",
      "e6",
      "--cwd",
      "/var/www",
      "--user",
      "65534:65534",
      "-e",
      "FOO=bar",
      "p1",
      "sh",
      "-c",
      'pwd; id -u; id -g; echo "$FOO"; echo to-stderr >&2',
    ]);
    assertEquals([flags.code, flags.stdout, flags.stderr], [
      0,
      "/var/www\n65534\n65534\nbar\n",
      "to-stderr\n",
    ]);
    const piped = await daemon.tug(["tasks", "exec", "-i", "--exec-id", "e7", "p1", "cat"], {
      stdin: "through exec\n",
    });
    assertEquals(piped.stdout, "through exec\n", piped.stderr);
    assertEquals(
      await ok(daemon, [
        "containers",
        "exec",
        "-d",
        "--exec-id",
        "bg",
        "p1",
        "sh",
        "-c",
        "echo detached > /tmp/d",
      ]),
      "",
    );
    const detached = await waitFor("the detached exec's file", async () => {
      const r = await daemon.tug([
        "containers",
        "exec",
        `--exec-id`,
        `cat-${crypto.randomUUID().slice(0, 8)}`,
        "p1",
        "cat",
        "/tmp/d",
      ]);
      return r.code === 0 ? r.stdout : undefined;
    });
    assertEquals(detached, "detached\n");
    // An exec id is taken while its process runs (free again once it has exited, as with ctr).
    await ok(daemon, ["containers", "exec", "-d", "--exec-id", "long", "p1", "sleep", "1000"]);
    await fails(
      daemon,
      ["containers", "exec", "--exec-id", "long", "p1", "true"],
      "running already",
    );
    await ok(daemon, ["tasks", "kill", "--exec-id", "long", "-s", "KILL", "p1"]);
    await fails(daemon, ["containers", "exec", "p1", "true"], "needs --exec-id");
    await fails(
      daemon,
      ["containers", "exec", "--exec-id", "../x", "p1", "true"],
      "Invalid exec id",
    );
    await fails(
      daemon,
      ["containers", "exec", "-t", "--exec-id", "tt", "p1", "true"],
      "not a terminal",
    );
    const missing = await daemon.tug([
      "containers",
      "exec",
      "--exec-id",
      "e8",
      "p1",
      "/nonexistent",
    ]);
    assert(missing.code !== 0, "an exec of a missing binary fails");

    await ok(daemon, ["tasks", "kill", "-s", "KILL", "p1"]);
    assertEquals((await stopped(daemon, "p1")).exit?.exitCode, 137);
    await fails(daemon, ["containers", "exec", "--exec-id", "late", "p1", "true"], "stopped");
  }),
});

Deno.test({
  name:
    "wrong lifecycle states, unknown names, duplicate ids and bad flags give clear errors and change nothing",
  ignore,
  fn: showSuppressed(async () => {
    await using env = await registryAndDaemon();
    const { daemon } = env;

    await ok(daemon, ["containers", "create", BUSYBOX, "c1", "sleep", "1000"]);
    await fails(daemon, ["containers", "create", BUSYBOX, "c1"], 'Container "c1" already exists');
    await fails(daemon, ["run", "--rm", BUSYBOX, "c1", "true"], "already exists");
    await fails(daemon, ["tasks", "kill", "c1"], "has no task");
    await fails(daemon, ["tasks", "ps", "c1"], "has no task");
    await ok(daemon, ["containers", "start", "c1"]);
    await fails(daemon, ["containers", "start", "c1"], "its task is running");
    await fails(daemon, ["tasks", "start", "-d", "c1"], "its task is running");
    await fails(daemon, ["containers", "delete", "c1"], "its task is running");
    await fails(daemon, ["tasks", "delete", "c1"], "kill it first");
    assertEquals((await task(daemon, "c1"))?.status, "running", "the failed calls changed nothing");
    await ok(daemon, ["tasks", "kill", "-s", "9", "c1"]);
    await stopped(daemon, "c1");
    await fails(daemon, ["containers", "exec", "--exec-id", "x", "c1", "true"], "stopped");
    await fails(daemon, ["tasks", "pause", "c1"], "c1");
    // A stopped task is started afresh by start.
    await ok(daemon, ["containers", "start", "c1"]);
    assertEquals((await task(daemon, "c1"))?.status, "running");
    await ok(daemon, ["containers", "delete", "--force", "c1"]);
    assertEquals(await ids(daemon), []);

    for (
      const args of [
        ["containers", "info", "nope"],
        ["containers", "start", "nope"],
        ["containers", "delete", "nope"],
        ["tasks", "kill", "nope"],
        ["containers", "logs", "nope"],
        ["tasks", "metrics", "nope"],
      ]
    ) {
      await fails(daemon, args, 'Container "nope" does not exist');
    }
    await fails(
      daemon,
      ["containers", "create", "docker.io/library/nope:latest", "x1"],
      "not found",
    );
    await fails(
      daemon,
      ["run", "--rm", "docker.io/library/nope:latest", "x2", "true"],
      "not found",
    );

    const bad: [string[], string][] = [
      [["--memory-limit", "abc"], "--memory-limit"],
      [["--memory-limit", "0"], "--memory-limit"],
      [["--restart", "sometimes"], 'Invalid --restart "sometimes"'],
      [["--restart", "always:3"], "Invalid --restart"],
      [["--cpus", "-1"], "Invalid --cpus"],
      [["--pids-limit", "1.5"], "Invalid --pids-limit"],
      [["--log-opt", "max-file=0"], "--log-opt max-file"],
      [["--log-opt", "colour=blue"], "Unknown --log-opt"],
      [["--mount", "type=bind,dst=relative"], "mount"],
      [["--env-file", "/nonexistent/env"], "Cannot read --env-file"],
      [["--label", "novalue"], "Invalid --label"],
      [["--seccomp-profile", "/nonexistent.json"], "Cannot read --seccomp-profile"],
      [["--bogus"], "bogus"],
      [["--rm", "-d"], "cannot be used together"],
      [["--rm", "--restart", "always"], "--rm and --restart cannot be used together"],
      [["--memory-limit", "1MiB"], "memoryLimit"],
      [["--label", "io.tug.rm=true"], "tug sets it itself"],
      [["-t"], "not a terminal"],
    ];
    for (const [flags, message] of bad) {
      await fails(daemon, ["run", ...flags, BUSYBOX, "x3", "true"], message);
    }
    await fails(daemon, ["run", BUSYBOX, "../x", "true"], "Invalid container id");
    await fails(daemon, ["containers", "create", BUSYBOX, "a/b"], "Invalid container id");
    await fails(daemon, ["run", BUSYBOX], "needs IMAGE and ID");
    await fails(
      daemon,
      ["run", "--user", "nosuchuser", "--rm", BUSYBOX, "x4", "true"],
      "nosuchuser",
    );
    await fails(daemon, ["run", "--rm", BUSYBOX, "x5", "/nonexistent"], "/nonexistent");
    assertEquals(await ids(daemon), [], "no failed command left a container");
    assertEquals(JSON.parse(await ok(daemon, ["tasks", "list", "--json"])), []);
    const snapshots = JSON.parse(await ok(daemon, ["snapshots", "ls", "--json"])) as {
      kind: string;
    }[];
    assertEquals(
      snapshots.filter((s) => s.kind !== "committed").length,
      0,
      "no writable snapshot left",
    );
  }),
});

interface Event {
  timestamp: string;
  namespace: string;
  topic: string;
  payload: Record<string, unknown>;
}

/** `tug events --json` in the background: the events it printed so far, and waiting for one. */
async function watchEvents(
  daemon: TestDaemon,
): Promise<
  {
    events: Event[];
    until(what: string, fn: (e: Event) => boolean): Promise<Event>;
    stop(): Promise<void>;
  }
> {
  const child = new Deno.Command(TUG, {
    args: ["-a", daemon.address, "events", "--json"],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const events: Event[] = [];
  const reading = (async () => {
    let buf = "";
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      buf += chunk;
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        events.push(JSON.parse(buf.slice(0, nl)));
        buf = buf.slice(nl + 1);
      }
    }
  })();
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch {
      // gone
    }
    await child.status;
    await reading.catch(() => {});
  };
  try {
    await waitForSubscribers(daemon, 1);
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    events,
    until: (what, fn) => waitFor(what, () => Promise.resolve(events.find(fn))),
    stop,
  };
}

Deno.test({
  name: "no fd of the shim reaches a container or an exec: they have stdin, stdout and stderr only",
  ignore,
  fn: showSuppressed(async () => {
    await using env = await registryAndDaemon();
    const { daemon } = env;
    // A running container first, so that the shim holds its pipes, logs and FIFOs too.
    await ok(daemon, ["run", "-d", BUSYBOX, "busy", "sleep", "1000"]);
    // The container's init is sh, PID 1: its fds, listed by its child ls (`; true` keeps sh from
    // exec'ing ls in its place).
    assertEquals(
      await ok(daemon, ["run", "--rm", BUSYBOX, "fresh", "sh", "-c", "ls /proc/1/fd; true"]),
      "0\n1\n2\n",
    );
    // ls as the exec'd process itself: 3 is the directory it lists.
    assertEquals(
      await ok(daemon, ["containers", "exec", "--exec-id", "e1", "busy", "ls", "/proc/self/fd"]),
      "0\n1\n2\n3\n",
    );
    assertEquals(
      await ok(daemon, ["containers", "exec", "--exec-id", "e2", "busy", "ls", "/proc/1/fd"]),
      "0\n1\n2\n",
    );
    await ok(daemon, ["tasks", "kill", "-s", "KILL", "busy"]);
    await ok(daemon, ["containers", "rm", "--force", "busy"]);
  }),
});

Deno.test({
  name: "a container over its memory limit is OOM-killed, and its exit says so",
  ignore,
  fn: showSuppressed(async () => {
    await using env = await registryAndDaemon();
    const { daemon } = env;
    const watch = await watchEvents(daemon);
    try {
      const r = await daemon.tug([
        "run",
        "--memory-limit",
        "16MiB",
        BUSYBOX,
        "oom",
        "dd",
        "if=/dev/zero",
        "of=/dev/null",
        "bs=64M",
        "count=1",
      ]);
      assertEquals(r.code, 137, r.stderr);
      const info = JSON.parse(await ok(daemon, ["containers", "info", "oom"]));
      assertEquals(info.spec.linux.resources.memory.limit, 16 << 20);
      assertEquals(info.task.status, "stopped");
      assertEquals(info.task.exit.exitCode, 137);
      assertEquals(info.task.exit.oomKilled, true);
      assertMatch(await ok(daemon, ["containers", "list"]), /^oom\s+\S+\s+stopped \(137\)/m);
      const exit = await watch.until(
        "the exit event",
        (e) => e.topic === "/tasks/exit" && e.payload.id === "oom",
      );
      assertEquals(exit.payload.oomKilled, true);
      const topics = watch.events.filter((e) => e.payload.id === "oom").map((e) => e.topic);
      assert(
        topics.indexOf("/tasks/oom") >= 0 &&
          topics.indexOf("/tasks/oom") < topics.indexOf("/tasks/exit"),
        topics.join(" "),
      );
      await ok(daemon, ["containers", "rm", "oom"]);
      const fits = await daemon.tug([
        "run",
        "--rm",
        "--memory-limit",
        "64MiB",
        BUSYBOX,
        "fits",
        "dd",
        "if=/dev/zero",
        "of=/dev/null",
        "bs=8M",
        "count=1",
      ]);
      assertEquals(fits.code, 0, fits.stderr);
    } finally {
      await watch.stop();
    }
  }),
});

Deno.test({
  name: "restart policy on-failure:2 restarts a failing container twice, then leaves it stopped",
  ignore,
  fn: showSuppressed(async () => {
    await using env = await registryAndDaemon('restart_delay = "50ms"');
    const { daemon } = env;
    await ok(daemon, [
      "run",
      "-d",
      "--restart",
      "on-failure:2",
      BUSYBOX,
      "rf",
      "sh",
      "-c",
      "echo run; exit 1",
    ]);
    const info = await waitFor("two restarts", async () => {
      const c = JSON.parse(await ok(daemon, ["containers", "info", "rf"]));
      const runs = ((await logs(daemon, "rf")).stdout.match(/^run$/gm) ?? []).length;
      return c.labels["io.tug.restart.count"] === "2" && c.task?.status === "stopped" && runs === 3
        ? c
        : undefined;
    });
    assertEquals(info.labels["io.tug.restart.policy"], "on-failure");
    assertEquals(info.labels["io.tug.restart.max-retries"], "2");
    assertEquals(info.task.exit.exitCode, 1);

    // A container that succeeds is not restarted by on-failure; a user's kill stops `always`.
    await ok(daemon, [
      "run",
      "-d",
      "--restart",
      "always",
      BUSYBOX,
      "al",
      "sh",
      "-c",
      "echo up; sleep 1000",
    ]);
    await logged(daemon, "al", "up");
    await ok(daemon, ["tasks", "kill", "-s", "KILL", "al"]);
    assertEquals((await stopped(daemon, "al")).exit?.exitCode, 137);
    const al = JSON.parse(await ok(daemon, ["containers", "info", "al"]));
    assertEquals(al.labels["io.tug.restart.stopped"], "true", "the user's kill is remembered");
  }),
});

Deno.test({
  name: "events stream the life of a container: create, task create, start, exit, delete",
  ignore,
  fn: showSuppressed(async () => {
    await using env = await registryAndDaemon();
    const { daemon } = env;
    const watch = await watchEvents(daemon);
    try {
      const r = await daemon.tug(["run", "--rm", BUSYBOX, "ev1", "sh", "-c", "exit 4"]);
      assertEquals(r.code, 4);
      await watch.until(
        "/containers/delete",
        (e) => e.topic === "/containers/delete" && e.payload.id === "ev1",
      );
    } finally {
      await watch.stop();
    }
    const mine = watch.events.filter((e) => e.payload.id === "ev1");
    assertEquals(mine.map((e) => e.topic), [
      "/containers/create",
      "/tasks/create",
      "/tasks/start",
      "/tasks/exit",
      "/tasks/delete",
      "/containers/delete",
    ]);
    assert(mine.every((e) => e.namespace === "default"));
    assertEquals(mine[3]!.payload.exitCode, 4);
    assertEquals(mine[0]!.payload.image, BUSYBOX);
  }),
});

Deno.test({
  name:
    "a container that floods its output does not starve its shim: the shim still answers at once",
  ignore,
  fn: showSuppressed(async () => {
    await using env = await registryAndDaemon();
    const { daemon } = env;
    await ok(daemon, ["run", "-d", BUSYBOX, "flood", "yes"]);
    await ok(daemon, ["run", "-d", BUSYBOX, "quiet", "sleep", "1000"]);
    await new Promise((r) => setTimeout(r, 1000));
    for (
      const args of [["tasks", "ls"], ["tasks", "ps", "quiet"], [
        "tasks",
        "kill",
        "-s",
        "KILL",
        "flood",
      ]]
    ) {
      const start = performance.now();
      const r = await daemon.tug(args, { timeout: 20_000 });
      assertEquals(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
      assert(
        performance.now() - start < 5_000,
        `${args.join(" ")} took ${performance.now() - start} ms`,
      );
    }
    await ok(daemon, ["tasks", "kill", "-s", "KILL", "quiet"]);
  }),
});

Deno.test({
  name:
    "an attached run gets every byte of a large output, stdout and stderr, in order; so does the log",
  ignore,
  fn: showSuppressed(async () => {
    // The shim wrote into the CLI's FIFOs without waiting and dropped what did not fit: a CLI
    // copying 10 MB lost from 2 to 300 KB of it, most runs.
    await using env = await registryAndDaemon();
    const { daemon } = env;
    const n = 1_500_000;
    const expected = Array.from({ length: n }, (_, i) => `${i + 1}\n`).join("");
    const r = await daemon.tug([
      "run",
      "--log-opt",
      "max-size=1g",
      BUSYBOX,
      "big",
      "sh",
      "-c",
      `seq 1 ${n}; seq 1 ${n} >&2`,
    ], {
      timeout: 120_000,
    });
    assertEquals(r.code, 0, r.stderr.slice(0, 200));
    assertEquals(r.stdout.length, expected.length, "stdout");
    assert(r.stdout === expected, "stdout in order");
    assert(r.stderr === expected, `stderr: ${r.stderr.length} bytes, ${expected.length} expected`);
    const logged = await logs(daemon, "big");
    assert(logged.stdout === expected, `the log's stdout: ${logged.stdout.length} bytes`);
    assert(logged.stderr === expected, `the log's stderr: ${logged.stderr.length} bytes`);
    // A reader that leaves early: quiet, with SIGPIPE's status (it printed "tug: Broken pipe").
    const head = await run("sh", [
      "-c",
      `${TUG} -a ${daemon.address} containers logs big | head -1`,
    ]);
    assertEquals(head.stdout.split("\n")[0], "1");
    assertEquals(head.stderr, "");
    await ok(daemon, ["containers", "rm", "big"]);
  }),
});

Deno.test({
  name:
    "a client whose stdin ends while attached to a terminal leaves its shim idle (its stdin relay ends)",
  ignore,
  fn: showSuppressed(async () => {
    // The shim kept watching the closed stdin FIFO, which epoll reports hung up at every wait:
    // one core spent until the container was removed.
    await using env = await registryAndDaemon();
    const { daemon } = env;
    await ok(daemon, ["run", "-d", "-t", BUSYBOX, "tty", "sleep", "1000"]);
    const [shim] = shimPids(daemon.dir);
    assert(shim !== undefined, "the daemon's shim");
    const cpu = () => {
      const f = Deno.readTextFileSync(`/proc/${shim}/stat`).split(") ")[1]!.split(" ");
      return (Number(f[11]) + Number(f[12])) / 100; // utime + stime, in seconds (USER_HZ 100)
    };
    // An attach whose stdin ends at once (its CLI closes the FIFO), ended after 3 s: the task runs on.
    // Its FIFOs go in a directory of the test's: the CLI killed at the timeout cannot remove them.
    await withTempDir((tmp) =>
      daemon.tug(["tasks", "attach", "tty"], { stdin: "", timeout: 3_000, env: { TMPDIR: tmp } })
        .catch(() => {})
    );
    const before = cpu();
    await new Promise((res) => setTimeout(res, 2000));
    const used = cpu() - before;
    assert(used < 0.5, `the shim used ${used} s of CPU in 2 s with nothing to do`);
    assertEquals((await task(daemon, "tty"))?.status, "running");
    await ok(daemon, ["containers", "rm", "-f", "tty"]);
  }),
});

Deno.test({
  name:
    "exec: an exec id is free again once its process has exited; an exec whose client was killed runs to its end",
  ignore,
  fn: showSuppressed(async () => {
    await using env = await registryAndDaemon();
    const { daemon } = env;
    await ok(daemon, ["run", "-d", BUSYBOX, "box", "sleep", "1000"]);
    // ctr reuses exec ids once the exec has ended; tug refused every reuse for the container's life.
    assertEquals(
      await ok(daemon, ["tasks", "exec", "--exec-id", "e1", "box", "echo", "one"]),
      "one\n",
    );
    assertEquals(
      await ok(daemon, ["tasks", "exec", "--exec-id", "e1", "box", "echo", "two"]),
      "two\n",
    );
    // The client goes away before the exec writes 600 KB: the process used to block for good on
    // its full FIFO (nobody read it); its output is now discarded and it finishes.
    // Its FIFOs go in a directory of the test's: a killed CLI cannot remove them.
    await withTempDir(async (tmp) => {
      const cli = new Deno.Command(TUG, {
        args: [
          "-a",
          daemon.address,
          "tasks",
          "exec",
          "--exec-id",
          "e2",
          "box",
          "sh",
          "-c",
          "sleep 1; seq 1 100000; touch /done",
        ],
        env: { TMPDIR: tmp },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      await new Promise((r) => setTimeout(r, 500));
      cli.kill("SIGKILL");
      await cli.output();
    });
    await waitFor("the exec to finish", async () => {
      const r = await daemon.tug([
        "tasks",
        "exec",
        "--exec-id",
        "check",
        "box",
        "test",
        "-f",
        "/done",
      ]);
      return r.code === 0 ? true : undefined;
    });
    await ok(daemon, ["containers", "rm", "-f", "box"]);
  }),
});

Deno.test({
  name:
    "containers start -a attaches (the command's -a, not the socket's); two tasks attach at once both get the output, and end on SIGTERM without leaving their FIFOs",
  ignore,
  fn: showSuppressed(async () => {
    await using env = await registryAndDaemon();
    const { daemon } = env;
    await ok(daemon, ["containers", "create", BUSYBOX, "sa", "sh", "-c", "echo out; exit 3"]);
    // daemon.tug puts `-a SOCK` before the command: that one still names the socket.
    const started = await daemon.tug(["containers", "start", "-a", "sa"]);
    assertEquals([started.code, started.stdout], [3, "out\n"], started.stderr);
    await ok(daemon, ["containers", "rm", "sa"]);

    await ok(daemon, [
      "run",
      "-d",
      BUSYBOX,
      "ticker",
      "sh",
      "-c",
      "while true; do echo t; sleep 0.1; done",
    ]);
    await withTempDir(async (tmp) => {
      // Two clients attached at once both get the output (the second took it from the first).
      const attach = () =>
        new Deno.Command(TUG, {
          args: ["-a", daemon.address, "tasks", "attach", "ticker"],
          env: { TMPDIR: tmp },
          stdin: "null",
          stdout: "piped",
          stderr: "piped",
        }).spawn();
      const clis = [attach(), attach()];
      await waitFor(
        "both attaches' FIFOs",
        () => Promise.resolve([...Deno.readDirSync(tmp)].length === 2 ? true : undefined),
      );
      await new Promise((r) => setTimeout(r, 500));
      for (const cli of clis) cli.kill("SIGTERM");
      for (const cli of clis) {
        const out = new TextDecoder().decode((await cli.output()).stdout);
        assert(
          out.split("t\n").length > 3,
          `each attached client got the output: ${JSON.stringify(out)}`,
        );
      }
      assertEquals([...Deno.readDirSync(tmp)].map((e) => e.name), [], "their FIFOs are removed");
    });
    await ok(daemon, ["containers", "rm", "-f", "ticker"]);
  }),
});

Deno.test({
  name: "restart policies: a kill stops a crash loop, and a user's start begins the count anew",
  ignore,
  fn: showSuppressed(async () => {
    await using env = await registryAndDaemon('restart_delay = "200ms"');
    const { daemon } = env;
    const info = async (id: string) => JSON.parse(await ok(daemon, ["containers", "info", id]));
    // A crash loop is stopped between restarts most of the time: the kill was refused ("not
    // running") and the loop went on; it now cancels the pending restart.
    await ok(daemon, ["run", "-d", "--restart", "always", BUSYBOX, "loop", "sh", "-c", "exit 1"]);
    await waitFor(
      "a restart",
      async () => (await info("loop")).labels["io.tug.restart.count"] ? true : undefined,
    );
    await ok(daemon, ["tasks", "kill", "-s", "KILL", "loop"]);
    const count = (await info("loop")).labels["io.tug.restart.count"];
    await new Promise((r) => setTimeout(r, 1500));
    const after = await info("loop");
    assertEquals(after.labels["io.tug.restart.count"], count, "no restart after the kill");
    assertEquals(after.labels["io.tug.restart.stopped"], "true");
    assertEquals(after.task?.status, "stopped");

    // on-failure:1, exhausted; a user's start counts from zero again (the count stayed at its
    // maximum, so the container was never restarted again).
    await ok(daemon, [
      "run",
      "-d",
      "--restart",
      "on-failure:1",
      BUSYBOX,
      "of",
      "sh",
      "-c",
      "echo run; exit 1",
    ]);
    const runs = async () => ((await logs(daemon, "of")).stdout.match(/^run$/gm) ?? []).length;
    await waitFor(
      "one restart",
      async () =>
        (await runs()) === 2 && (await info("of")).task?.status === "stopped" ? true : undefined,
    );
    await new Promise((r) => setTimeout(r, 600));
    assertEquals(await runs(), 2, "on-failure:1 restarts once");
    await ok(daemon, ["tasks", "start", "-d", "of"]);
    await waitFor(
      "the start and one more restart",
      async () => ((await runs()) === 4 ? true : undefined),
    );
    await ok(daemon, ["containers", "rm", "-f", "loop", "of"]);
  }),
});
