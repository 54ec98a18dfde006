/**
 * Registry hosts configuration against real registries: hosts.toml mirrors
 * (tried first, with their headers and `?ns=`, falling back to the server),
 * capabilities, `_default`, TLS with a configured CA, client certificates,
 * `skip_verify`, the HTTPS → HTTP fallback for loopback registries, and
 * a CA file or hosts.toml rewritten while a client lives.
 */
import { join } from "node:path";
import { Unavailable } from "../errors.ts";
import { LocalContentStore } from "../images/content/local.ts";
import { RegistryClient } from "../images/registry/client.ts";
import { fetchImage } from "../images/registry/fetch.ts";
import { assert, assertEquals, assertRejects, assertStringIncludes } from "./assert.ts";
import { pushFixture } from "./fixtures/mod.ts";
import { requires, withTempDir } from "./harness.ts";
import { makePki, startProxy, startRegistry, type TestProxy } from "./registry.ts";

const ignore = requires("registry", "skopeo", "umoci", "busybox");

function hostDir(hostsDir: string, host: string): string {
  const [name, port] = host.split(":");
  return join(hostsDir, `${name}_${port}_`);
}

async function writeHosts(dir: string, text: string): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(join(dir, "hosts.toml"), text);
}

function paths(proxy: TestProxy, from = 0): string[] {
  return proxy.requests.slice(from).map((r) =>
    `${r.method} ${r.path.replace(/sha256:[0-9a-f]{64}/, "<digest>")}`
  );
}

Deno.test({
  name:
    "a hosts.toml mirror is tried first with its headers and ?ns=, and the server answers what the mirror lacks",
  ignore,
  async fn() {
    await using upstream = await startRegistry();
    await using mirror = await startRegistry();
    await pushFixture(upstream, "single");
    await pushFixture(upstream, "layers");
    await pushFixture(mirror, "single");
    await using up = startProxy(upstream.url);
    const mirrorProxy = startProxy(mirror.url);
    try {
      await withTempDir(async (dir) => {
        const hostsDir = join(dir, "certs.d");
        await writeHosts(
          hostDir(hostsDir, up.host),
          `server = "http://${up.host}"
[header]
  x-tug-test = "upstream"

[host."http://${mirrorProxy.host}"]
  capabilities = ["pull", "resolve"]
  [host."http://${mirrorProxy.host}".header]
    x-tug-test = ["mirror", "second"]
`,
        );
        const store = await LocalContentStore.open(join(dir, "content"));
        const client = new RegistryClient({ hostsDir });

        // The mirror has it: everything comes from the mirror.
        await fetchImage(client, `${up.host}/single`, { store });
        assertEquals(up.requests.length, 0);
        assert(mirrorProxy.requests.length >= 4);
        for (const r of mirrorProxy.requests) {
          assertStringIncludes(r.path, `ns=${encodeURIComponent(up.host)}`);
          assertEquals(r.headers["x-tug-test"], "mirror, second");
        }

        // The mirror lacks it: the server answers, with its own header and no ns.
        const m0 = mirrorProxy.requests.length;
        await fetchImage(client, `${up.host}/layers`, { store });
        const missed = mirrorProxy.requests.slice(m0);
        assertEquals(missed[0]!.method, "HEAD");
        assertEquals(
          missed[0]!.path,
          `/v2/layers/manifests/latest?ns=${encodeURIComponent(up.host)}`,
        );
        // Each fetch asks the mirror first; it answers 404 to all, and the server serves them.
        assert(missed.every((r) => r.status === 404), JSON.stringify(missed.map((r) => r.status)));
        assert(up.requests.length >= 4);
        assert(
          up.requests.every((r) => r.status === 200),
          JSON.stringify(up.requests.map((r) => r.status)),
        );
        for (const r of up.requests) {
          assert(!r.path.includes("ns="), r.path);
          assertEquals(r.headers["x-tug-test"], "upstream");
        }

        // The mirror is down: the server answers.
        await mirrorProxy.stop();
        const store2 = await LocalContentStore.open(join(dir, "content2"));
        const u0 = up.requests.length;
        const image = await fetchImage(client, `${up.host}/single`, { store: store2 });
        assertEquals(image.stats.existing, 0);
        assert(paths(up, u0).includes("HEAD /v2/single/manifests/latest"));
        client.close();
      });
    } finally {
      await mirrorProxy.stop();
    }
  },
});

Deno.test({
  name: "a pull-only mirror serves blobs but the server resolves tags",
  ignore,
  async fn() {
    await using upstream = await startRegistry();
    await using mirror = await startRegistry();
    await pushFixture(upstream, "single");
    await pushFixture(mirror, "single");
    await using up = startProxy(upstream.url);
    await using mp = startProxy(mirror.url);
    await withTempDir(async (dir) => {
      const hostsDir = join(dir, "certs.d");
      // Through _default: the mirror for every registry without its own directory.
      await writeHosts(
        join(hostsDir, "_default"),
        `[host."http://${mp.host}"]\n  capabilities = ["pull"]\n`,
      );
      const store = await LocalContentStore.open(join(dir, "content"));
      const client = new RegistryClient({ hostsDir, plainHttp: true });
      await fetchImage(client, `${up.host}/single`, { store });
      assertEquals(paths(up), ["HEAD /v2/single/manifests/latest"]);
      const ns = `?ns=${encodeURIComponent(up.host)}`;
      assertEquals(paths(mp).sort(), [
        `GET /v2/single/blobs/<digest>${ns}`,
        `GET /v2/single/blobs/<digest>${ns}`,
        `GET /v2/single/manifests/<digest>${ns}`,
      ]);
      client.close();
    });
  },
});

Deno.test({
  name:
    "a TLS registry is reached with the CA from hosts.toml, with skip_verify or -k, and not without either",
  ignore,
  async fn() {
    await using reg = await startRegistry({ tls: true });
    await pushFixture(reg, "single");
    await withTempDir(async (dir) => {
      const store = await LocalContentStore.open(join(dir, "content"));
      // Configured as HTTPS without a CA: the certificate is unknown. (Left unconfigured, a
      // loopback registry gets containerd's default: HTTPS without verification.)
      const bare = join(dir, "bare.d");
      await writeHosts(hostDir(bare, reg.host), `server = "https://${reg.host}"\n`);
      const plain = new RegistryClient({ hostsDir: bare });
      const err = await assertRejects(
        () => fetchImage(plain, `${reg.host}/single`, { store }),
        Unavailable,
      );
      assertStringIncludes(err.message, reg.host);
      plain.close();

      const withCa = join(dir, "ca.d");
      await writeHosts(
        hostDir(withCa, reg.host),
        `server = "https://${reg.host}"\nca = "ca.pem"\n`,
      );
      await Deno.copyFile(reg.pki!.caCert, join(hostDir(withCa, reg.host), "ca.pem"));
      const client = new RegistryClient({ hostsDir: withCa });
      const image = await fetchImage(client, `${reg.host}/single`, { store });
      assertEquals(image.stats.fetched, 3);
      client.close();

      // -k: the server named by hosts.toml has no TLS settings of its own, so it is not verified.
      const insecureFlag = new RegistryClient({ hostsDir: bare, skipVerify: true });
      const flagged = await fetchImage(insecureFlag, `${reg.host}/single`, {
        store: await LocalContentStore.open(join(dir, "content-k")),
      });
      assertEquals(flagged.stats.fetched, 3);
      insecureFlag.close();

      const skip = join(dir, "skip.d");
      await writeHosts(
        hostDir(skip, reg.host),
        `server = "https://${reg.host}"\nskip_verify = true\n`,
      );
      const store2 = await LocalContentStore.open(join(dir, "content2"));
      const insecure = new RegistryClient({ hostsDir: skip });
      const again = await fetchImage(insecure, `${reg.host}/single`, { store: store2 });
      assertEquals(again.stats.fetched, 3);
      insecure.close();
    });
  },
});

Deno.test({
  name: "a registry that requires client certificates accepts the pair from hosts.toml",
  ignore,
  async fn() {
    await using reg = await startRegistry({ tls: true, clientCerts: true });
    await pushFixture(reg, "single");
    await withTempDir(async (dir) => {
      const pki = reg.pki!;
      const store = await LocalContentStore.open(join(dir, "content"));
      const without = join(dir, "without.d");
      await writeHosts(
        hostDir(without, reg.host),
        `server = "https://${reg.host}"\nca = "${pki.caCert}"\n`,
      );
      const refused = new RegistryClient({ hostsDir: without });
      await assertRejects(
        () => fetchImage(refused, `${reg.host}/single`, { store }),
        Unavailable,
        reg.host,
      );
      refused.close();

      const withPair = join(dir, "with.d");
      await writeHosts(
        hostDir(withPair, reg.host),
        `server = "https://${reg.host}"\nca = "${pki.caCert}"\nclient = [["${pki.clientCert}", "${pki.clientKey}"]]\n`,
      );
      const client = new RegistryClient({ hostsDir: withPair });
      const image = await fetchImage(client, `${reg.host}/single`, { store });
      assertEquals(image.stats.fetched, 3);
      client.close();
    });
  },
});

Deno.test({
  name: "a loopback registry without configuration is tried over HTTPS, then plain HTTP",
  ignore,
  async fn() {
    await using reg = await startRegistry();
    await pushFixture(reg, "single");
    await withTempDir(async (dir) => {
      const store = await LocalContentStore.open(join(dir, "content"));
      const port = reg.host.split(":")[1];
      const client = new RegistryClient();
      const image = await fetchImage(client, `localhost:${port}/single`, { store });
      assertEquals(image.stats.fetched, 3);
      assertEquals(image.name, `localhost:${port}/single:latest`);
      client.close();
    });
  },
});

Deno.test({
  name: "a CA file rewritten under a client is used by its next pull (a CA rotated, then back)",
  ignore,
  async fn() {
    await using reg = await startRegistry({ tls: true });
    await pushFixture(reg, "single");
    await withTempDir(async (dir) => {
      const other = await makePki(join(dir, "other-pki"));
      const hostsDir = join(dir, "certs.d");
      const ca = join(hostDir(hostsDir, reg.host), "ca.pem");
      await writeHosts(
        hostDir(hostsDir, reg.host),
        `server = "https://${reg.host}"\nca = "ca.pem"\n`,
      );
      await Deno.copyFile(reg.pki!.caCert, ca);
      const store = await LocalContentStore.open(join(dir, "content"));
      const client = new RegistryClient({ hostsDir, userAgent: "tug-test" });
      try {
        assertEquals((await fetchImage(client, `${reg.host}/single`, { store })).stats.fetched, 3);
        // Another CA in the same file: the registry's certificate is no longer trusted.
        await Deno.writeTextFile(ca, await Deno.readTextFile(other.caCert));
        await assertRejects(
          () => fetchImage(client, `${reg.host}/single`, { store }),
          Unavailable,
          "invalid peer certificate",
        );
        await Deno.copyFile(reg.pki!.caCert, ca);
        assertEquals((await fetchImage(client, `${reg.host}/single`, { store })).stats.existing, 3);
      } finally {
        client.close();
      }
    });
  },
});

Deno.test({
  name:
    "a host that fell back to plain HTTP is asked over HTTPS again once hosts.toml says https without a fallback",
  ignore,
  async fn() {
    await using reg = await startRegistry({ tls: true });
    await pushFixture(reg, "single");
    await withTempDir(async (dir) => {
      const wrong = await makePki(join(dir, "wrong-pki"));
      const hostsDir = join(dir, "certs.d");
      const d = hostDir(hostsDir, reg.host);
      // An http server with TLS settings: HTTPS first (the CA is wrong), then plain HTTP, which a
      // TLS registry does not speak.
      await writeHosts(d, `server = "http://${reg.host}"\nca = "${wrong.caCert}"\n`);
      const store = await LocalContentStore.open(join(dir, "content"));
      const client = new RegistryClient({ hostsDir });
      try {
        await assertRejects(() => fetchImage(client, `${reg.host}/single`, { store }));
        await writeHosts(d, `server = "https://${reg.host}"\nca = "${reg.pki!.caCert}"\n`);
        assertEquals((await fetchImage(client, `${reg.host}/single`, { store })).stats.fetched, 3);
      } finally {
        client.close();
      }
    });
  },
});
