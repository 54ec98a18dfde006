/**
 * `tug daemon` as a process: start, readiness and stopping through
 * sd_notify, SIGTERM (exit 0, socket removed), a second daemon refused, a
 * stale socket replaced, configuration errors and warnings, `tug config`,
 * `tug install-service`, and the CLI when no daemon runs. Everything runs
 * the real `dist/tug`.
 */
import { join } from "node:path";
import { parseConfig } from "../daemon/config.ts";
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./assert.ts";
import { startDaemon, writeTestConfig } from "./daemon.ts";
import { requires, TUG, tug, withTempDir } from "./harness.ts";

const ignore = requires("root", "tug");

/** A datagram socket of our own (python3) that collects what it receives. */
async function notifyReceiver(path: string) {
  const script = `
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("bound", flush=True)
while True:
    msg = s.recv(4096).decode()
    print(msg, flush=True)
    if msg.startswith("STOPPING"):
        break
`;
  const child = new Deno.Command("python3", {
    args: ["-c", script, path],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  let out = "";
  const reading = (async () => {
    for await (const c of child.stdout.pipeThrough(new TextDecoderStream())) out += c;
  })();
  while (!out.includes("bound\n")) await new Promise((r) => setTimeout(r, 10));
  return {
    messages: () => out.split("\n").filter((l) => l && l !== "bound"),
    async done() {
      await child.status;
      await reading;
    },
    kill() {
      try {
        child.kill("SIGKILL");
      } catch {
        // gone
      }
    },
  };
}

Deno.test({
  name:
    "the daemon says READY=1 when serving and STOPPING=1 on SIGTERM, then exits 0 and removes its socket",
  ignore,
  async fn() {
    await withTempDir(async (tmp) => {
      const notify = join(tmp, "notify.sock");
      const receiver = await notifyReceiver(notify);
      try {
        const daemon = await startDaemon({ notifySocket: notify });
        try {
          assertEquals(receiver.messages(), ["READY=1"]);
          assert((await Deno.lstat(daemon.address)).isSocket);
          assertEquals(((await Deno.lstat(daemon.address)).mode ?? 0) & 0o777, 0o660);
          const v = await daemon.tug(["version"]);
          assertEquals(v.code, 0, v.stderr);
          assertStringIncludes(v.stdout, "Server:");
          assertEquals(await daemon.stop(), 0);
          await receiver.done();
          assertEquals(receiver.messages(), ["READY=1", "STOPPING=1"]);
          let gone = false;
          try {
            await Deno.lstat(daemon.address);
          } catch (err) {
            gone = err instanceof Deno.errors.NotFound;
          }
          assert(gone, "the socket file is removed");
          assertStringIncludes(daemon.log(), 'msg="stopped"');
        } finally {
          await daemon.cleanup();
        }
      } finally {
        receiver.kill();
      }
    });
  },
});

Deno.test({
  name: "the CLI says the daemon is not running when nothing answers on the socket",
  ignore,
  async fn() {
    const daemon = await startDaemon();
    try {
      await daemon.stop();
      for (const args of [["images", "ls"], ["version"], ["namespaces", "ls"], ["events"]]) {
        const r = await daemon.tug(args, { timeout: 10_000 });
        assertEquals(r.code, 1, args.join(" "));
        assertStringIncludes(
          r.stderr,
          `Cannot connect to the tug daemon at ${daemon.address}: is it running?`,
        );
      }
      const none = await tug(["-a", "/nonexistent/tug.sock", "info"]);
      assertEquals(none.code, 1);
      assertStringIncludes(
        none.stderr,
        "Cannot connect to the tug daemon at /nonexistent/tug.sock: is it running?",
      );
    } finally {
      await daemon.cleanup();
    }
  },
});

Deno.test({
  name:
    "a second daemon on the same root refuses to start; after kill -9, the stale socket is replaced",
  ignore,
  async fn() {
    await using first = await startDaemon();
    const second = await tug(["daemon", "--config", first.config], { timeout: 30_000 });
    assertEquals(second.code, 1);
    // Its lock, whatever socket the second one asks for (two daemons on one root each restarted
    // and removed the other's tasks).
    assertStringIncludes(second.stderr, `another tug daemon (pid ${first.pid}) uses the root`);
    assertEquals((await first.tug(["version"])).code, 0, "the first one still serves");
    await first.kill9();
    assert((await Deno.lstat(first.address)).isSocket, "kill -9 leaves the socket file");
    const again = await first.restart();
    assertStringIncludes(again.log(), "removing a stale socket file");
    assertEquals((await again.tug(["version"])).code, 0);
    assertEquals(await again.stop(), 0);
  },
});

Deno.test({
  name: "an invalid config value stops the daemon naming the key; an unknown key is a warning",
  ignore,
  async fn() {
    await withTempDir(async (dir) => {
      const config = await writeTestConfig(dir, { extraConfig: "[logs]\nmax_file = 0\n" });
      const bad = await tug(["daemon", "--config", config], { timeout: 30_000 });
      assertEquals(bad.code, 1);
      assertStringIncludes(
        bad.stderr,
        "Invalid config logs.max_file: must be between 1 and 100, got 0",
      );
      const good = await writeTestConfig(dir);
      const addr = await tug(["daemon", "--config", good, "--address", "relative.sock"]);
      assertEquals(addr.code, 1);
      assertStringIncludes(addr.stderr, "Invalid config api.address:");
      const missing = await tug(["daemon", "--config", join(dir, "none.toml")]);
      assertEquals(missing.code, 1);
      assertStringIncludes(missing.stderr, "no such file");
    });
    const daemon = await startDaemon({ extraConfig: "[shim]\nflavour = 'mint'\n" });
    try {
      assertStringIncludes(daemon.log(), "Unknown config key shim.flavour");
      assertEquals(await daemon.stop(), 0);
    } finally {
      await daemon.cleanup();
    }
  },
});

Deno.test({
  name:
    "tug config default parses back to the defaults, and config dump shows the file with flags on top",
  ignore: requires("tug"),
  async fn() {
    const def = await tug(["config", "default"]);
    assertEquals(def.code, 0, def.stderr);
    const parsed = parseConfig(def.stdout);
    assertEquals(parsed.warnings, []);
    assertEquals(parsed.config.api.address, "/run/tug/tug.sock");
    await withTempDir(async (dir) => {
      const file = join(dir, "c.toml");
      await Deno.writeTextFile(file, '[debug]\nlevel = "warn"\n[colour]\nx = 1\n');
      const dump = await tug(["config", "dump", "--config", file, "--root", "/srv/tug"]);
      assertEquals(dump.code, 0, dump.stderr);
      assertStringIncludes(dump.stderr, "warning: Unknown config key colour");
      const c = parseConfig(dump.stdout).config;
      assertEquals([c.debug.level, c.root], ["warn", "/srv/tug"]);
      const bad = await tug(["config", "dump", "--config", file, "--state", "x"]);
      assertEquals(bad.code, 1);
      assertStringIncludes(bad.stderr, "Invalid config state");
    });
  },
});

Deno.test({
  name: "install-service writes the systemd unit and keeps an existing config",
  ignore: requires("tug"),
  async fn() {
    await withTempDir(async (dir) => {
      const r = await tug(["install-service", "--root-dir", dir]);
      assertEquals(r.code, 0, r.stderr);
      const unit = await Deno.readTextFile(join(dir, "etc/systemd/system/tug.service"));
      for (const line of ["Type=notify", "KillMode=process", "Delegate=yes", "Restart=always"]) {
        assertStringIncludes(unit, `\n${line}\n`);
      }
      assertStringIncludes(unit, `\nExecStart=${TUG} daemon --config /etc/tug/config.toml\n`);
      const config = await Deno.readTextFile(join(dir, "etc/tug/config.toml"));
      assertEquals(parseConfig(config).warnings, []);
      await Deno.writeTextFile(join(dir, "etc/tug/config.toml"), "# mine\n");
      const again = await tug(["install-service", "--root-dir", dir]);
      assertEquals(again.code, 0);
      assertMatch(again.stdout, /kept .*config.toml/);
      assertEquals(await Deno.readTextFile(join(dir, "etc/tug/config.toml")), "# mine\n");
    });
  },
});

Deno.test({
  name: "bad flags and unknown commands are clear errors with a non-zero exit",
  ignore: requires("tug"),
  async fn() {
    const cases: Array<[string[], string]> = [
      [["images", "pull", "--nope", "x"], "Unknown flag for tug images pull: --nope"],
      [["images", "frobnicate"], 'unknown command "frobnicate"'],
      [["images", "pull"], "tug images pull needs REF"],
      [["namespaces", "create"], "needs NAME"],
      [["images", "ls", "--timeout", "soon"], "Invalid --timeout"],
      [["daemon", "--root"], "Flag needs a value for tug daemon: --root"],
    ];
    for (const [args, message] of cases) {
      const r = await tug(["-a", "/nonexistent.sock", ...args]);
      assert(r.code !== 0, args.join(" "));
      assertStringIncludes(r.stderr, message);
    }
  },
});
