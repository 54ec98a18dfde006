/**
 * The daemon's registry hosts configuration (`[registry] config_path`,
 * containerd's certs.d layout) through the real CLI and daemon, against
 * Debian's docker-registry: changes under the directory take effect
 * without a restart, -k with a server hosts.toml names, and what the
 * daemon logs about a hosts.toml.
 */
import { join } from "node:path";
import { assert, assertEquals, assertStringIncludes } from "./assert.ts";
import { ok, startDaemon } from "./daemon.ts";
import { pushFixture } from "./fixtures/mod.ts";
import { requires } from "./harness.ts";
import { startRegistry } from "./registry.ts";

const ignore = requires("root", "tug", "registry", "skopeo", "umoci", "busybox");

/** Writes `certs.d/<namespace>/hosts.toml` of the test daemon in `dir`; returns its path. */
async function writeHosts(dir: string, namespace: string, text: string): Promise<string> {
  const hostDir = join(dir, "certs.d", namespace);
  await Deno.mkdir(hostDir, { recursive: true });
  const file = join(hostDir, "hosts.toml");
  await Deno.writeTextFile(file, text);
  return file;
}

/** A loopback port nothing listens on. */
function deadPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  return port;
}

Deno.test({
  name:
    "a hosts.toml created, edited or removed while the daemon runs is used by the next pull, without a restart",
  ignore,
  async fn() {
    await using registry = await startRegistry();
    await pushFixture(registry, "single");
    await using daemon = await startDaemon();
    const ref = "mirror.test/single";
    const pull = async (expect: "ok" | string) => {
      const r = await daemon.tug(["images", "pull", ref]);
      if (expect === "ok") assert(r.code === 0, `pull ${ref}: ${r.stderr}`);
      else {
        assert(r.code !== 0, `pull ${ref} should fail`);
        assertStringIncludes(r.stderr, expect);
      }
    };
    // No directory: mirror.test is a host name that does not resolve.
    await pull("connect to registry mirror.test failed");
    await writeHosts(daemon.dir, "mirror.test", `server = "http://${registry.host}"\n`);
    await pull("ok");
    const dead = `127.0.0.1:${deadPort()}`;
    await writeHosts(daemon.dir, "mirror.test", `server = "http://${dead}"\n`);
    await pull(`connect to registry ${dead} failed`);
    await writeHosts(daemon.dir, "mirror.test", `server = "http://${registry.host}"\n`);
    await pull("ok");
    await Deno.remove(join(daemon.dir, "certs.d", "mirror.test"), { recursive: true });
    await pull("connect to registry mirror.test failed");
  },
});

Deno.test({
  name:
    "images pull -k skips verification of a TLS server hosts.toml names, which fails without it",
  ignore,
  async fn() {
    await using registry = await startRegistry({ tls: true });
    await pushFixture(registry, "single");
    await using daemon = await startDaemon();
    await writeHosts(daemon.dir, "tls0.test", `server = "https://${registry.host}"\n`);
    const refused = await daemon.tug(["images", "pull", "tls0.test/single"]);
    assert(refused.code !== 0, "a pull of an unknown CA's server without -k should fail");
    assertStringIncludes(refused.stderr, "invalid peer certificate");
    await ok(daemon, ["images", "pull", "-k", "tls0.test/single"]);
  },
});

Deno.test({
  name:
    "a hosts.toml key tug does not know is a warning in the daemon's log naming the file and key",
  ignore,
  async fn() {
    await using registry = await startRegistry();
    await pushFixture(registry, "single");
    await using daemon = await startDaemon();
    const file = await writeHosts(
      daemon.dir,
      "mirror.test",
      `server = "http://${registry.host}"\nproxy = "http://my-proxy:8080"\n` +
        `[host."http://${registry.host}"]\n  capabilities = ["pull"]\n  dial_timeout = "5s"\n`,
    );
    await ok(daemon, ["images", "pull", "mirror.test/single"]);
    assertStringIncludes(
      daemon.log(),
      `level=warn msg="Unknown registry hosts key proxy in ${file}: ignored"`,
    );
    // Once, though the pull read the file just written again for each request; and not again
    // while it stays the same.
    await ok(daemon, ["images", "pull", "mirror.test/single"]);
    assertEquals(daemon.log().split("Unknown registry hosts key proxy").length - 1, 1);
    assertStringIncludes(
      daemon.log(),
      `level=warn msg="Unknown registry hosts key host.\\"http://${registry.host}\\".dial_timeout in ${file}: ignored"`,
    );
  },
});
