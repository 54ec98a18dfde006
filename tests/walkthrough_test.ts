/**
 * The containerd walkthrough of the daemon issue, run as written on the real
 * `dist/tug` daemon: `docker.io` is mirrored to a test registry through
 * hosts.toml, where busybox-based stand-ins are pushed as
 * `library/nginx:latest` (busybox httpd on port 80) and
 * `library/alpine:latest`. Every command runs as a user would type it, and
 * the test checks that it does what its name says.
 */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./assert.ts";
import {
  ok,
  promtoolCheck,
  scrape,
  showSuppressed,
  startDaemon,
  type TestDaemon,
} from "./daemon.ts";
import { INDEX_HTML, NGINX_CMD, pushWalkthroughImages } from "./fixtures/mod.ts";
import { requires, TUG } from "./harness.ts";
import { startRegistry } from "./registry.ts";

const ignore = requires("root", "tug", "registry", "skopeo", "umoci", "busybox", "promtool");

const NGINX = "docker.io/library/nginx:latest";
const ALPINE = "docker.io/library/alpine:latest";

/**
 * Runs a shell command line under a pseudo-terminal (util-linux script); its
 * exit code and what the terminal showed. script's stdin stays open until the
 * command exits: at end of input script would type an end-of-file character
 * into the terminal, which a raw terminal passes on to the container.
 */
async function underPty(command: string): Promise<{ code: number; output: string }> {
  const child = new Deno.Command("script", {
    args: ["-qec", command, "/dev/null"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  try {
    const [stdout, stderr, status] = await Promise.all([
      new Response(child.stdout).text(),
      new Response(child.stderr).text(),
      child.status,
    ]);
    return { code: status.code, output: stdout + stderr };
  } finally {
    clearTimeout(timer);
    await child.stdin.close().catch(() => {});
  }
}

Deno.test({
  name:
    "the containerd walkthrough runs as written: pull, create, start, list, exec, logs, run -t, config, metrics",
  ignore,
  fn: showSuppressed(async () => {
    await using registry = await startRegistry();
    await pushWalkthroughImages(registry);
    await using daemon = await startDaemon({ registry });

    // tug images pull docker.io/library/nginx:latest
    const pulled = await ok(daemon, ["images", "pull", NGINX]);
    assertMatch(pulled, new RegExp(`^${NGINX}: pulled sha256:[0-9a-f]{64}`, "m"));

    // tug containers create docker.io/library/nginx:latest nginx-container
    assertEquals(await ok(daemon, ["containers", "create", NGINX, "nginx-container"]), "");
    const created = JSON.parse(await ok(daemon, ["containers", "list", "--json"]));
    assertEquals(created.map((c: { id: string }) => c.id), ["nginx-container"]);
    assertEquals(created[0].task, undefined, "created, not started");

    // tug containers start nginx-container
    assertEquals(await ok(daemon, ["containers", "start", "nginx-container"]), "");

    // tug containers list
    const table = (await ok(daemon, ["containers", "list"])).trimEnd().split("\n");
    assertMatch(table[0]!, /^CONTAINER\s+IMAGE\s+STATUS\s+PID\s+CREATED$/);
    assertEquals(table.length, 2, table.join("\n"));
    assertMatch(table[1]!, new RegExp(`^nginx-container\\s+${NGINX}\\s+running\\s+\\d+\\s+`));

    // tug images pull docker.io/library/alpine:latest; tug images list
    await ok(daemon, ["images", "pull", ALPINE]);
    const images = await ok(daemon, ["images", "list"]);
    assertStringIncludes(images, NGINX);
    assertStringIncludes(images, ALPINE);
    assertEquals((await ok(daemon, ["images", "list", "-q"])).split("\n").filter(Boolean), [
      ALPINE,
      NGINX,
    ]);

    // tug images remove docker.io/library/alpine:latest
    assertEquals(await ok(daemon, ["images", "remove", ALPINE]), `${ALPINE}\n`);
    assertEquals(await ok(daemon, ["images", "list", "-q"]), `${NGINX}\n`);

    // tug containers info nginx-container
    const info = JSON.parse(await ok(daemon, ["containers", "info", "nginx-container"]));
    assertEquals(info.id, "nginx-container");
    assertEquals(info.image, NGINX);
    assertEquals(info.spec.process.args, NGINX_CMD);
    assertStringIncludes(info.spec.process.env.join("\n"), "PATH=/usr/sbin:/usr/bin:/sbin:/bin");
    assertEquals(info.task.status, "running");
    assert(info.task.pid > 0);

    // tug containers exec --exec-id my-exec-id nginx-container ps aux
    const ps = await daemon.tug([
      "containers",
      "exec",
      "--exec-id",
      "my-exec-id",
      "nginx-container",
      "ps",
      "aux",
    ]);
    assertEquals(ps.code, 0, ps.stderr);
    assertMatch(ps.stdout, /^PID\s+USER\s+COMMAND$/m);
    assertMatch(
      ps.stdout,
      /^\s*1 root\s+httpd -f -v -p 80 -h \/var\/www$/m,
      "httpd is the container's PID 1",
    );
    assertMatch(ps.stdout, /ps aux$/m);

    // The web server answers on port 80 inside the container's network namespace.
    const page = await daemon.tug([
      "containers",
      "exec",
      "--exec-id",
      "fetch",
      "nginx-container",
      "wget",
      "-qO-",
      "http://127.0.0.1/",
    ]);
    assertEquals(page.code, 0, page.stderr);
    assertEquals(page.stdout, INDEX_HTML);

    // tug containers logs nginx-container: httpd -v logged the request.
    const logged = /^(\[::ffff:)?127\.0\.0\.1\]?:\d+: response:200$/m;
    const deadline = Date.now() + 30_000;
    let logs = await daemon.tug(["containers", "logs", "nginx-container"]);
    // The shim writes the log as the output comes: give it the moment it may need.
    while (logs.code === 0 && !logged.test(logs.stderr) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      logs = await daemon.tug(["containers", "logs", "nginx-container"]);
    }
    assertEquals(logs.code, 0, logs.stderr);
    assertMatch(logs.stderr, logged);
    const stamped = await ok(daemon, ["containers", "logs", "--timestamps", "nginx-container"]);
    assertEquals(stamped, "", "httpd writes only to stderr");

    // tug run --rm -t docker.io/library/nginx:latest nginx-2 … under a pseudo-terminal.
    const tty = await underPty(
      `${TUG} -a ${daemon.address} run --rm -t ${NGINX} nginx-2 sh -c 'tty; test -t 0 && echo stdin is a terminal; exit 3'`,
    );
    assertEquals(tty.code, 3, tty.output);
    assertMatch(tty.output, /^\/dev\/(pts\/\d+|console)\r?$/m);
    assertStringIncludes(tty.output, "stdin is a terminal");
    assertEquals(
      (await ok(daemon, ["containers", "list", "-q"])).split("\n").filter(Boolean),
      ["nginx-container"],
      "--rm removed nginx-2",
    );
    assertEquals(
      JSON.parse(await ok(daemon, ["tasks", "list", "--json"])).map((t: { id: string }) => t.id),
      ["nginx-container"],
    );

    // tug config default
    const defaults = await ok(daemon, ["config", "default"]);
    for (
      const key of [
        "[api]",
        "[metrics]",
        "address",
        "[containers]",
        "cgroup_parent",
        "[registry]",
        "config_path",
      ]
    ) {
      assertStringIncludes(defaults, key);
    }
    assertMatch(defaults, /^# /m, "a comment per key");

    // [metrics] address serves /metrics with the running container's figures.
    const metrics = await scrape(daemon);
    const labels = `container_id="nginx-container",namespace="default"`;
    for (
      const family of [
        "tug_container_cpu_usage_seconds_total",
        "tug_container_memory_usage_bytes",
        "tug_container_pids",
      ]
    ) {
      assertMatch(
        metrics,
        new RegExp(`^${family}\\{[^}]*${labels.replace(/[{}]/g, "\\$&")}[^}]*\\} \\d`, "m"),
        `${family} for nginx-container`,
      );
    }
    assertMatch(metrics, /^tug_build_info\{/m);
    const check = await promtoolCheck(metrics);
    assertEquals(check.code, 0, check.output);

    // Done: stop the web server (PID 1 of its namespace: it has no SIGTERM handler, so SIGKILL);
    // the task's exit is recorded, then the container goes.
    assertEquals(await ok(daemon, ["tasks", "kill", "-s", "SIGKILL", "nginx-container"]), "");
    const stopped = await waitStopped(daemon, "nginx-container");
    assertEquals(stopped.status, "stopped");
    assertEquals(stopped.exit?.exitCode, 137);
    await ok(daemon, ["tasks", "delete", "nginx-container"]);
    await ok(daemon, ["containers", "delete", "nginx-container"]);
    assertEquals(await ok(daemon, ["containers", "list", "-q"]), "");

    // The daemon's stderr holds its own log lines only: no warning of the runtime under it
    // (Deno 2.9 warns once when a handler reads request.signal).
    const foreign = daemon.log().split("\n").filter((l) => l !== "" && !l.startsWith("time="));
    assertEquals(foreign, [], "lines in the daemon's stderr that are not tug's log");
  }),
});

interface Task {
  id: string;
  status: string;
  exit?: { exitCode: number };
}

async function waitStopped(daemon: TestDaemon, id: string): Promise<Task> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const tasks = JSON.parse(await ok(daemon, ["tasks", "list", "--json"])) as Task[];
    const t = tasks.find((x) => x.id === id);
    if (t?.status === "stopped" || Date.now() > deadline) return t ?? { id, status: "missing" };
    await new Promise((r) => setTimeout(r, 50));
  }
}
