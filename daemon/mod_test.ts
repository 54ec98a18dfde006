/**
 * startDaemon() in process: the socket (mode, stale files, a live one),
 * the metrics listener, plugins, and a graceful stop.
 */
import { join } from "node:path";
import { FailedPrecondition, InvalidArgument } from "../errors.ts";
import {
  assert,
  assertEquals,
  assertRejects,
  assertStringIncludes,
  assertThrows,
} from "../tests/assert.ts";
import { type Config, defaultConfig } from "./config.ts";
import { ServiceKey } from "./context.ts";
import { createLogger } from "./log.ts";
import { probeSocket, splitHostPort, startDaemon } from "./mod.ts";
import type { Plugin } from "./plugins.ts";
import type { RouteModule } from "./api/_http.ts";

async function withConfig(fn: (config: Config, dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "tug-daemon-mod-" });
  const config = defaultConfig();
  config.root = join(dir, "root");
  config.state = join(dir, "state");
  config.api.address = join(dir, "state", "tug.sock");
  config.images.snapshotter = "native";
  try {
    await fn(config, dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const quiet = createLogger("error");

async function staleSocket(path: string): Promise<void> {
  const r = await new Deno.Command("python3", {
    args: ["-c", "import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])", path],
  }).output();
  assertEquals(r.code, 0);
}

Deno.test("splitHostPort() reads host:port and [v6]:port", () => {
  assertEquals(splitHostPort("127.0.0.1:1338"), { hostname: "127.0.0.1", port: 1338 });
  assertEquals(splitHostPort("[::1]:9"), { hostname: "::1", port: 9 });
  assertThrows(() => splitHostPort("1338"), InvalidArgument);
});

Deno.test("probeSocket() tells absent, stale, alive and not-a-socket apart", async () => {
  await withConfig(async (config, dir) => {
    assertEquals(await probeSocket(join(dir, "none")), "absent");
    await Deno.writeTextFile(join(dir, "file"), "");
    assertEquals(await probeSocket(join(dir, "file")), "not-socket");
    await staleSocket(join(dir, "stale.sock"));
    assertEquals(await probeSocket(join(dir, "stale.sock")), "stale");
    const d = await startDaemon({ config, log: quiet, notifySocket: "" });
    try {
      assertEquals(await probeSocket(config.api.address), "alive");
    } finally {
      await d.stop();
    }
  });
});

Deno.test("the daemon serves on a 0660 socket, refuses a second start on its root or its socket, and removes the socket when stopped", async () => {
  await withConfig(async (config) => {
    const d = await startDaemon({ config, log: quiet, notifySocket: "" });
    try {
      const info = await Deno.lstat(config.api.address);
      assert(info.isSocket);
      assertEquals((info.mode ?? 0) & 0o777, 0o660);
      await assertRejects(
        () => startDaemon({ config, log: quiet, notifySocket: "" }),
        FailedPrecondition,
        `another tug daemon (pid ${Deno.pid}) uses the root ${config.root}`,
      );
      // Another root and state on the same socket: the socket says so.
      const elsewhere = await Deno.makeTempDir();
      try {
        await assertRejects(
          () =>
            startDaemon({
              config: { ...config, root: `${elsewhere}/root`, state: `${elsewhere}/state` },
              log: quiet,
              notifySocket: "",
            }),
          FailedPrecondition,
          "another process answers",
        );
        // The same state under another root: the state's lock says so.
        await assertRejects(
          () =>
            startDaemon({
              config: {
                ...config,
                root: `${elsewhere}/root`,
                api: { ...config.api, address: `${elsewhere}/s.sock` },
              },
              log: quiet,
              notifySocket: "",
            }),
          FailedPrecondition,
          `uses the state directory ${config.state}`,
        );
      } finally {
        await Deno.remove(elsewhere, { recursive: true });
      }
      const client = Deno.createHttpClient({
        proxy: { transport: "unix", path: config.api.address },
      });
      const res = await fetch("http://127.0.0.1/v1/version", { client });
      assertEquals((await res.json()).api, "v1");
      client.close();
    } finally {
      await d.stop();
    }
    await assertRejects(() => Deno.lstat(config.api.address), Deno.errors.NotFound);
    await d.stop(); // a second stop is the same stop
  });
});

Deno.test("a stale socket file is replaced; a path that is not a socket is refused", async () => {
  await withConfig(async (config) => {
    await Deno.mkdir(config.state, { recursive: true });
    await staleSocket(config.api.address);
    const lines: string[] = [];
    const d = await startDaemon({
      config,
      log: createLogger("warn", (l) => lines.push(l)),
      notifySocket: "",
    });
    await d.stop();
    assert(lines.some((l) => l.includes("removing a stale socket file")), lines.join("\n"));
    await Deno.writeTextFile(config.api.address, "not a socket");
    await assertRejects(
      () => startDaemon({ config, log: quiet, notifySocket: "" }),
      FailedPrecondition,
      "is not a socket",
    );
  });
});

Deno.test("metrics are served over TCP at /metrics only", async () => {
  await withConfig(async (config) => {
    config.metrics.address = "127.0.0.1:0";
    const d = await startDaemon({ config, log: quiet, notifySocket: "" });
    try {
      assert(d.metricsAddress?.startsWith("127.0.0.1:"));
      const res = await fetch(`http://${d.metricsAddress}/metrics`);
      assertEquals(res.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
      assertStringIncludes(await res.text(), "# TYPE tug_build_info gauge");
      const other = await fetch(`http://${d.metricsAddress}/`);
      assertEquals(other.status, 404);
      await other.body?.cancel();
    } finally {
      await d.stop();
    }
  });
});

Deno.test("plugins start in order, provide services, and close in reverse; a failing one is reported and skipped", async () => {
  await withConfig(async (config) => {
    const order: string[] = [];
    const KEY = new ServiceKey<{ hello(): string }>("greeter");
    const plugins: Plugin[] = [
      {
        id: "greeter",
        load: () =>
          Promise.resolve({
            init(ctx) {
              ctx.provide(KEY, { hello: () => "hi" });
              order.push("init greeter");
              return { close: () => void order.push("close greeter") };
            },
          }),
      },
      {
        id: "broken",
        load: () => Promise.resolve({ init: () => Promise.reject(new Error("no shim binary")) }),
      },
      {
        id: "user",
        load: () =>
          Promise.resolve({
            init(ctx) {
              order.push(`init user: ${ctx.use(KEY).hello()}`);
              return { close: () => void order.push("close user") };
            },
          }),
      },
    ];
    const lines: string[] = [];
    const d = await startDaemon({
      config,
      log: createLogger("error", (l) => lines.push(l)),
      plugins,
      notifySocket: "",
    });
    assertEquals(
      await probeSocket(config.api.address),
      "alive",
      "the daemon serves despite the broken plugin",
    );
    await d.stop();
    assertEquals(order, ["init greeter", "init user: hi", "close user", "close greeter"]);
    assert(
      lines.some((l) => l.includes("plugin failed to start") && l.includes("plugin=broken")),
      lines.join("\n"),
    );
  });
});

Deno.test("stop() lets a request in flight finish, and new connections are refused meanwhile", async () => {
  await withConfig(async (config) => {
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let entered!: () => void;
    const inside = new Promise<void>((r) => (entered = r));
    const slow: RouteModule = {
      routes(app) {
        app.get("/v1/test/slow", async (c) => {
          entered();
          await released;
          return c.json({ finished: true });
        });
      },
    };
    const d = await startDaemon({
      config,
      log: quiet,
      notifySocket: "",
      routes: [() => Promise.resolve(slow)],
    });
    const client = Deno.createHttpClient({
      proxy: { transport: "unix", path: config.api.address },
    });
    try {
      const pending = fetch("http://127.0.0.1/v1/test/slow", { client });
      await inside;
      const stopping = d.stop();
      await new Promise((r) => setTimeout(r, 50));
      const fresh = Deno.createHttpClient({
        proxy: { transport: "unix", path: config.api.address },
      });
      await assertRejects(() => fetch("http://127.0.0.1/v1/test/slow", { client: fresh }));
      fresh.close();
      release();
      const res = await pending;
      assertEquals(await res.json(), { finished: true });
      await stopping;
    } finally {
      client.close();
    }
  });
});

Deno.test("the socket belongs to api.gid", async () => {
  await withConfig(async (config) => {
    config.api.gid = 100;
    const d = await startDaemon({ config, log: quiet, notifySocket: "" });
    try {
      assertEquals((await Deno.lstat(config.api.address)).gid, 100);
    } finally {
      await d.stop();
    }
  });
});
