import { join } from "node:path";
import { InvalidArgument } from "../../errors.ts";
import { assertEquals, assertRejects } from "../../tests/assert.ts";
import { makePki, type TestPki } from "../../tests/registry.ts";
import { hostDirectories, hostsWith, isLocalhost, parseHostsToml, registryHosts } from "./hosts.ts";

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "tug-hosts-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** A CA and certificates made with openssl in `dir`/pki, with the client's pair in one file too. */
async function testPki(
  dir: string,
): Promise<TestPki & { both: string; read: (f: string) => string }> {
  const pki = await makePki(join(dir, "pki"));
  const both = join(pki.dir, "both.pem");
  const texts = new Map<string, string>();
  for (const f of [pki.caCert, pki.clientCert, pki.clientKey, pki.serverKey]) {
    texts.set(f, await Deno.readTextFile(f));
  }
  texts.set(both, texts.get(pki.clientCert)! + texts.get(pki.clientKey)!);
  await Deno.writeTextFile(both, texts.get(both)!);
  return { ...pki, both, read: (f) => texts.get(f)! };
}

const brief = (
  h: { scheme: string; host: string; path: string; capabilities: string[]; mirror: boolean },
) => `${h.scheme}://${h.host}${h.path} [${h.capabilities.join(",")}]${h.mirror ? " mirror" : ""}`;

Deno.test("registryHosts() defaults: docker.io is registry-1.docker.io, others are HTTPS", async () => {
  assertEquals((await registryHosts("docker.io")).map(brief), [
    "https://registry-1.docker.io/v2 [pull,resolve,push]",
  ]);
  assertEquals((await registryHosts("quay.io")).map(brief), [
    "https://quay.io/v2 [pull,resolve,push]",
  ]);
  assertEquals((await registryHosts("example.com:5000", { plainHttp: true })).map(brief), [
    "http://example.com:5000/v2 [pull,resolve,push]",
  ]);
  const [local] = await registryHosts("localhost:5000");
  assertEquals([local!.scheme, local!.httpFallback, local!.skipVerify], ["https", true, true]);
  const [loop] = await registryHosts("127.0.0.1:5000", { plainHttp: true });
  assertEquals([loop!.scheme, loop!.httpFallback], ["http", false]);
  const [skip] = await registryHosts("example.com", { skipVerify: true });
  assertEquals(skip!.skipVerify, true);
});

Deno.test("registryHosts() reads mirrors in file order, then the server, with their settings", async () => {
  await withDir(async (dir) => {
    const pki = await testPki(dir);
    await Deno.mkdir(join(dir, "docker.io"));
    await Deno.copyFile(pki.caCert, join(dir, "docker.io", "docker-mirror.crt"));
    await Deno.copyFile(pki.clientKey, join(dir, "docker.io", "c.key"));
    await Deno.writeTextFile(
      join(dir, "docker.io", "hosts.toml"),
      `server = "https://registry-1.docker.io"

[host."https://public-mirror.example.com"]
  capabilities = ["pull"]
[host."http://docker-mirror.internal:5000"]
  capabilities = ["pull", "resolve"]
  ca = "docker-mirror.crt"
  [host."http://docker-mirror.internal:5000".header]
    x-custom = ["a", "b"]
[host."https://a-mirror.example.com/prefix"]
  skip_verify = true
  client = [["${pki.clientCert}", "c.key"]]
[host."https://nonstandard.example.com/v2/upstream"]
  override_path = true
  client = "${pki.both}"
`,
    );
    const hosts = await registryHosts("docker.io", { hostsDir: dir });
    assertEquals(hosts.map(brief), [
      "https://public-mirror.example.com/v2 [pull] mirror",
      "https://docker-mirror.internal:5000/v2 [pull,resolve] mirror",
      "https://a-mirror.example.com/prefix/v2 [pull,resolve,push] mirror",
      "https://nonstandard.example.com/v2/upstream [pull,resolve,push] mirror",
      "https://registry-1.docker.io/v2 [pull,resolve,push]",
    ]);
    // An http host with TLS settings tries HTTPS first, then HTTP.
    assertEquals(hosts[1]!.httpFallback, true);
    assertEquals(hosts[1]!.caFiles, [join(dir, "docker.io", "docker-mirror.crt")]);
    assertEquals(hosts[1]!.tls, { ca: [pki.read(pki.caCert)] });
    assertEquals(hosts[1]!.header, { "x-custom": ["a", "b"] });
    assertEquals(hosts[2]!.skipVerify, true);
    assertEquals(hosts[2]!.clientPairs, [[pki.clientCert, join(dir, "docker.io", "c.key")]]);
    assertEquals(hosts[2]!.tls, {
      ca: [],
      cert: pki.read(pki.clientCert),
      key: pki.read(pki.clientKey),
    });
    // One file with the certificate and its key.
    assertEquals(hosts[3]!.clientPairs, [[pki.both, ""]]);
    assertEquals(hosts[3]!.tls, { ca: [], cert: pki.read(pki.both), key: pki.read(pki.both) });
    assertEquals(hosts[0]!.tls, { ca: [] });
    assertEquals(hostsWith(hosts, "resolve").map((h) => h.host), [
      "docker-mirror.internal:5000",
      "a-mirror.example.com",
      "nonstandard.example.com",
      "registry-1.docker.io",
    ]);
  });
});

Deno.test("registryHosts() with skipVerify (-k) skips verification on every host but where skip_verify is set", async () => {
  await withDir(async (dir) => {
    const pki = await testPki(dir);
    await Deno.mkdir(join(dir, "reg.io"));
    await Deno.writeTextFile(
      join(dir, "reg.io", "hosts.toml"),
      `server = "https://server.test"
[host."https://plain-tls.test"]
[host."https://with-ca.test"]
  ca = "${pki.caCert}"
[host."https://verified.test"]
  skip_verify = false
[host."http://http-only.test:5000"]
`,
    );
    const skipped = (hosts: { host: string; skipVerify: boolean }[]) =>
      hosts.map((h) => `${h.host} ${h.skipVerify}`);
    // As containerd's default TLS configuration: a host's own skip_verify wins, ca adds to it.
    const hosts = await registryHosts("reg.io", { hostsDir: dir, skipVerify: true });
    assertEquals(skipped(hosts), [
      "plain-tls.test true",
      "with-ca.test true",
      "verified.test false",
      "http-only.test:5000 true",
      "server.test true",
    ]);
    // It turns no http host into HTTPS-first (its own TLS settings would).
    assertEquals([hosts[3]!.scheme, hosts[3]!.httpFallback], ["http", false]);
    assertEquals(skipped(await registryHosts("reg.io", { hostsDir: dir })), [
      "plain-tls.test false",
      "with-ca.test false",
      "verified.test false",
      "http-only.test:5000 false",
      "server.test false",
    ]);
  });
  // Without configuration, --plain-http with -k stays plain HTTP (ctr's too).
  const [plain] = await registryHosts("example.com:5000", { plainHttp: true, skipVerify: true });
  assertEquals([plain!.scheme, plain!.httpFallback], ["http", false]);
});

Deno.test("registryHosts() looks in host_port_, host:port, then _default", async () => {
  assertEquals(hostDirectories("/c", "reg.io:5000"), [
    "/c/reg.io_5000_",
    "/c/reg.io:5000",
    "/c/_default",
  ]);
  assertEquals(hostDirectories("/c", "reg.io"), ["/c/reg.io", "/c/_default"]);
  await withDir(async (dir) => {
    await Deno.mkdir(join(dir, "_default"));
    await Deno.writeTextFile(
      join(dir, "_default", "hosts.toml"),
      `[host."http://mirror.local:5000"]\n  capabilities = ["pull", "resolve"]\n`,
    );
    assertEquals((await registryHosts("quay.io", { hostsDir: dir })).map(brief), [
      "http://mirror.local:5000/v2 [pull,resolve] mirror",
      "https://quay.io/v2 [pull,resolve,push]",
    ]);
    await Deno.mkdir(join(dir, "reg.io_5000_"));
    await Deno.writeTextFile(
      join(dir, "reg.io_5000_", "hosts.toml"),
      `server = "http://reg.io:5000"\n[header]\n  authorization-hint = "x"\n`,
    );
    const [only] = await registryHosts("reg.io:5000", { hostsDir: dir });
    assertEquals(brief(only!), "http://reg.io:5000/v2 [pull,resolve,push]");
    assertEquals(only!.header, { "authorization-hint": ["x"] });
  });
});

Deno.test("registryHosts() uses Docker's certificate files when there is no hosts.toml", async () => {
  await withDir(async (dir) => {
    const pki = await testPki(dir);
    const d = join(dir, "reg.io");
    await Deno.mkdir(d);
    await Deno.copyFile(pki.caCert, join(d, "ca.crt"));
    await Deno.copyFile(pki.clientCert, join(d, "client.cert"));
    await Deno.copyFile(pki.clientKey, join(d, "client.key"));
    const [host] = await registryHosts("reg.io", { hostsDir: dir });
    assertEquals(host!.caFiles, [join(d, "ca.crt")]);
    assertEquals(host!.clientPairs, [[join(d, "client.cert"), join(d, "client.key")]]);
    assertEquals(host!.tls, {
      ca: [pki.read(pki.caCert)],
      cert: pki.read(pki.clientCert),
      key: pki.read(pki.clientKey),
    });
    assertEquals(brief(host!), "https://reg.io/v2 [pull,resolve,push]");
  });
});

Deno.test("registryHosts() refuses TLS files it cannot use, naming the configuration and the file", async () => {
  await withDir(async (dir) => {
    const pki = await testPki(dir);
    const d = join(dir, "reg.io");
    await Deno.mkdir(d);
    const file = join(d, "hosts.toml");
    const failed = `read registry hosts file ${file} failed`;
    const refused = async (text: string, message: string) => {
      await Deno.writeTextFile(file, text);
      await assertRejects(
        () => registryHosts("reg.io", { hostsDir: dir }),
        InvalidArgument,
        message,
      );
    };
    // containerd: unable to load CA cert. (Deno's client would skip it and add no CA.)
    await Deno.writeTextFile(join(d, "bad.pem"), "garbage\n");
    await refused(
      `server = "https://reg.io"\nca = "bad.pem"\n`,
      `${failed}: unable to load CA certificate ${join(d, "bad.pem")}: no PEM certificate in it`,
    );
    await Deno.writeTextFile(
      join(d, "broken.pem"),
      "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    );
    await refused(
      `[host."https://m.io"]\nca = ["${pki.caCert}", "broken.pem"]\n`,
      `${failed}: unable to load CA certificate ${join(d, "broken.pem")}: `,
    );
    await refused(
      `server = "https://reg.io"\nca = "nope.pem"\n`,
      `${failed}: read CA certificate ${join(d, "nope.pem")} failed: No such file`,
    );
    await refused(
      `server = "https://reg.io"\nclient = [["${pki.clientCert}", "${pki.serverKey}"]]\n`,
      `${failed}: unable to load client certificate ${pki.clientCert} with key ${pki.serverKey}: `,
    );
    await refused(
      `server = "https://reg.io"\nclient = "${pki.clientCert}"\n`,
      `${failed}: unable to load client certificate ${pki.clientCert}: `,
    );
    // Docker's certificate files are checked the same way.
    await Deno.remove(file);
    await Deno.writeTextFile(join(d, "ca.crt"), "not a certificate\n");
    await assertRejects(
      () => registryHosts("reg.io", { hostsDir: dir }),
      InvalidArgument,
      `read registry certificates in ${d} failed: unable to load CA certificate ${
        join(d, "ca.crt")
      }: no PEM certificate in it`,
    );
  });
});

Deno.test("registryHosts() refuses several client certificate pairs for one host, naming them", async () => {
  await withDir(async (dir) => {
    const pki = await testPki(dir);
    const d = join(dir, "reg.io");
    await Deno.mkdir(d);
    const file = join(d, "hosts.toml");
    await Deno.writeTextFile(
      file,
      `server = "https://reg.io"\nclient = [["other.crt", "other.key"], ["${pki.clientCert}", "${pki.clientKey}"]]\n`,
    );
    await assertRejects(
      () => registryHosts("reg.io", { hostsDir: dir }),
      InvalidArgument,
      `read registry hosts file ${file} failed: only one client certificate pair is supported per host: client names 2 (${
        join(d, "other.crt")
      }, ${pki.clientCert}); keep the one the registry accepts`,
    );
    await Deno.remove(file);
    for (const name of ["a.cert", "b.cert"]) await Deno.copyFile(pki.clientCert, join(d, name));
    await assertRejects(
      () => registryHosts("reg.io", { hostsDir: dir }),
      InvalidArgument,
      `read registry certificates in ${d} failed: only one client certificate pair is supported per host: the directory has 2 (${
        join(d, "a.cert")
      }, ${join(d, "b.cert")})`,
    );
  });
});

Deno.test("parseHostsToml() refuses bad files and names the file and the problem", async () => {
  const opts = { namespace: "reg.io", dir: "/etc/tug/certs.d/reg.io" };
  await assertRejects(
    () => parseHostsToml(`server = [`, opts),
    InvalidArgument,
    "/etc/tug/certs.d/reg.io/hosts.toml",
  );
  await assertRejects(
    () => parseHostsToml(`server = "http://reg.io"\n[host."http://m"\n`, opts),
    InvalidArgument,
    "read registry hosts file /etc/tug/certs.d/reg.io/hosts.toml failed: Invalid TOML document: illegal character in key at line 2, column 17",
  );
  await assertRejects(
    () => parseHostsToml(`capabilities = ["pull", "fly"]`, opts),
    InvalidArgument,
    'unknown capability "fly"',
  );
  await assertRejects(
    () => parseHostsToml(`skip_verify = "yes"`, opts),
    InvalidArgument,
    "skip_verify",
  );
  await assertRejects(() => parseHostsToml(`ca = 3`, opts), InvalidArgument, "ca must be");
  await assertRejects(
    () => parseHostsToml(`client = [["a"]]`, opts),
    InvalidArgument,
    "client must be",
  );
  await assertRejects(
    () => parseHostsToml(`server = 5`, opts),
    InvalidArgument,
    "server must be a string",
  );
  assertEquals((await parseHostsToml(`server = "reg.io"`, opts)).map(brief), [
    "https://reg.io/v2 [pull,resolve,push]",
  ]);
});

Deno.test("parseHostsToml() refuses a non-boolean override_path and URLs that are not http(s)", async () => {
  const opts = { namespace: "reg.io", dir: "/etc/tug/certs.d/reg.io" };
  const file = "read registry hosts file /etc/tug/certs.d/reg.io/hosts.toml failed";
  await assertRejects(
    () => parseHostsToml(`server = "https://reg.io/api"\noverride_path = "yes"`, opts),
    InvalidArgument,
    `${file}: override_path must be true or false`,
  );
  await assertRejects(
    () => parseHostsToml(`[host."http://m.io"]\noverride_path = 1`, opts),
    InvalidArgument,
    `${file}: override_path must be true or false`,
  );
  await assertRejects(
    () => parseHostsToml(`server = "ftp://127.0.0.1:15136"`, opts),
    InvalidArgument,
    `${file}: server "ftp://127.0.0.1:15136" must be an http:// or https:// URL`,
  );
  await assertRejects(
    () => parseHostsToml(`server = "ht!tp://[bad"`, opts),
    InvalidArgument,
    `${file}: server "ht!tp://[bad" must be an http:// or https:// URL`,
  );
  await assertRejects(
    () => parseHostsToml(`[host."unix:///run/reg.sock"]`, opts),
    InvalidArgument,
    `${file}: host "unix:///run/reg.sock" must be an http:// or https:// URL`,
  );
  for (const bad of ["[bad", "http://", "https://a b.io", "https://a.io:99999"]) {
    await assertRejects(
      () => parseHostsToml(`server = "${bad}"`, opts),
      InvalidArgument,
      `${file}: server "${bad}" is not a URL`,
    );
  }
  // What containerd takes stays taken: no scheme (https), host:port, HTTP in capitals.
  assertEquals(
    (await parseHostsToml(
      `server = "localhost:5000"\n[host."HTTP://m.io:80/x"]\noverride_path = false\n`,
      opts,
    )).map(brief),
    [
      "http://m.io/x/v2 [pull,resolve,push] mirror",
      "https://localhost:5000/v2 [pull,resolve,push] mirror",
    ],
  );
});

Deno.test("registryHosts() warns of the keys it does not know, naming the file and the key", async () => {
  await withDir(async (dir) => {
    await Deno.mkdir(join(dir, "reg.io"));
    const file = join(dir, "reg.io", "hosts.toml");
    await Deno.writeTextFile(
      file,
      `server = "https://reg.io"
proxy = "http://my-proxy:8080"
capabilites = ["pull"]

[host."http://m.io:5000"]
  capabilities = ["pull"]
  dial_timeout = "5s"
  [host."http://m.io:5000".header]
    x-a = "b"
`,
    );
    const warnings: string[] = [];
    const hosts = await registryHosts("reg.io", {
      hostsDir: dir,
      warn: (message) => warnings.push(message),
    });
    assertEquals(hosts.map(brief), [
      "http://m.io:5000/v2 [pull] mirror",
      "https://reg.io/v2 [pull,resolve,push]",
    ]);
    assertEquals(warnings, [
      `Unknown registry hosts key host."http://m.io:5000".dial_timeout in ${file}: ignored`,
      `Unknown registry hosts key proxy in ${file}: ignored`,
      `Unknown registry hosts key capabilites in ${file}: ignored`,
    ]);
  });
});

Deno.test("registryHosts() reports an unreadable hosts.toml", async () => {
  await withDir(async (dir) => {
    await Deno.mkdir(join(dir, "reg.io"));
    await Deno.writeTextFile(join(dir, "reg.io", "hosts.toml"), '[host."x"\n');
    await assertRejects(
      () => registryHosts("reg.io", { hostsDir: dir }),
      InvalidArgument,
      "hosts.toml",
    );
  });
});

Deno.test("isLocalhost() knows localhost and loopback addresses", () => {
  for (
    const h of ["localhost", "localhost:5000", "127.0.0.1", "127.0.0.1:5000", "[::1]:5000", "::1"]
  ) assertEquals(isLocalhost(h), true, h);
  for (const h of ["example.com", "10.0.0.1:5000", "localhost.example.com"]) {
    assertEquals(isLocalhost(h), false, h);
  }
});
