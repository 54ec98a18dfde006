/**
 * A real registry for tests: Debian's `docker-registry` (CNCF distribution
 * 2.8) started on 127.0.0.1 on a free port, with its storage and a generated
 * config file in a temporary directory; without auth, with htpasswd basic
 * auth (bcrypt entry made with Python's crypt module, which uses libxcrypt),
 * or with token auth served by a small token server of our own (ES256 JWTs
 * with an `x5c` chain the registry trusts through `rootcertbundle`).
 * Optionally HTTPS with a generated CA (and client-certificate checks).
 *
 * Also a loopback HTTP proxy that records requests (method, path, headers),
 * and can stall a response after some bytes or strip `Range` headers, for
 * tests that count requests or interrupt downloads.
 *
 * The packaged docker-registry service is never used: each registry is our
 * own process on its own port, stopped by pid, its directory removed.
 *
 * @module
 */

import { join } from "node:path";

/** How a test registry authenticates clients. */
export type RegistryAuth = "none" | "htpasswd" | "token";

/** Options for {@link startRegistry}. */
export interface RegistryOptions {
  auth?: RegistryAuth;
  /** Serve HTTPS with a certificate from a generated CA. */
  tls?: boolean;
  /** With `tls`: require client certificates signed by the generated CA. */
  clientCerts?: boolean;
  /** With `htpasswd`: more users besides `credentials`, name → password (which may be empty). */
  users?: Record<string, string>;
}

/** Files of a generated CA and the certificates it signed. */
export interface TestPki {
  dir: string;
  caCert: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

/** A request the registry logged. */
export interface LoggedRequest {
  method: string;
  uri: string;
  status: number;
}

/** A running test registry. */
export interface TestRegistry {
  /** `127.0.0.1:<port>` */
  host: string;
  /** `http://127.0.0.1:<port>` (https with `tls`). */
  url: string;
  /** The temporary directory holding config, storage and logs. */
  dir: string;
  /** The registry's storage root (rootdirectory). */
  storage: string;
  pid: number;
  /** Credentials, with `htpasswd` or `token` auth. */
  credentials?: { username: string; password: string };
  /** The CA and certificates, with `tls`. */
  pki?: TestPki;
  /** The token server, with `token` auth. */
  tokenServer?: TokenServer;
  /** What the registry printed so far. */
  log(): string;
  /** Requests the registry logged so far, in order. */
  requests(): LoggedRequest[];
  /** Path of a blob's data file in the storage (to tamper with it). */
  blobPath(digest: string): string;
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

const PYTHON = "/usr/bin/python3";

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

async function run(
  cmd: string,
  args: string[],
  options: { cwd?: string; stdin?: string } = {},
): Promise<string> {
  const child = new Deno.Command(cmd, {
    args,
    stdout: "piped",
    stderr: "piped",
    stdin: options.stdin === undefined ? "null" : "piped",
    ...(options.cwd ? { cwd: options.cwd } : {}),
  }).spawn();
  if (options.stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(options.stdin));
    await w.close();
  }
  const out = await child.output();
  const d = new TextDecoder();
  if (out.code !== 0) {
    throw new Error(`${cmd} ${args.join(" ")} failed (${out.code}): ${d.decode(out.stderr)}`);
  }
  return d.decode(out.stdout);
}

/** A bcrypt htpasswd line for `user:password`, as registry 2.8 wants. */
export async function htpasswdLine(user: string, password: string): Promise<string> {
  const hash = (await run(PYTHON, [
    "-W",
    "ignore",
    "-c",
    "import crypt,sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)))",
    password,
  ])).trim();
  if (!hash.startsWith("$2")) throw new Error(`python crypt gave no bcrypt hash: ${hash}`);
  return `${user}:${hash}\n`;
}

/** Makes a CA, a server certificate for 127.0.0.1/localhost and a client certificate, with openssl. */
export async function makePki(dir: string): Promise<TestPki> {
  await Deno.mkdir(dir, { recursive: true });
  const p = (n: string) => join(dir, n);
  const ossl = (...args: string[]) => run("openssl", args, { cwd: dir });
  await ossl(
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    "ca.key",
    "-out",
    "ca.crt",
    "-days",
    "2",
    "-subj",
    "/CN=tug test CA",
  );
  await Deno.writeTextFile(
    p("server.ext"),
    "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
  );
  await Deno.writeTextFile(
    p("client.ext"),
    "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
  );
  for (const who of ["server", "client"]) {
    await ossl(
      "req",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      `${who}.key`,
      "-out",
      `${who}.csr`,
      "-subj",
      `/CN=tug test ${who}`,
    );
    await ossl(
      "x509",
      "-req",
      "-in",
      `${who}.csr`,
      "-CA",
      "ca.crt",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-out",
      `${who}.crt`,
      "-days",
      "2",
      "-extfile",
      `${who}.ext`,
    );
  }
  return {
    dir,
    caCert: p("ca.crt"),
    serverCert: p("server.crt"),
    serverKey: p("server.key"),
    clientCert: p("client.crt"),
    clientKey: p("client.key"),
  };
}

function yamlString(s: string): string {
  return JSON.stringify(s);
}

async function waitReady(
  url: string,
  pid: number,
  log: () => string,
  client?: Deno.HttpClient,
): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      const res = await fetch(`${url}/v2/`, client ? { client } : {});
      await res.body?.cancel();
      if (res.status === 200 || res.status === 401) return;
    } catch {
      // not listening yet
    }
    try {
      Deno.statSync(`/proc/${pid}`);
    } catch {
      throw new Error(`docker-registry exited early:\n${log()}`);
    }
    if (Date.now() > deadline) {
      throw new Error(`docker-registry did not answer within 15 s:\n${log()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Starts a registry (see the module documentation); stop it with `stop()` or `await using`. */
export async function startRegistry(options: RegistryOptions = {}): Promise<TestRegistry> {
  const dir = await Deno.makeTempDir({ prefix: "tug-registry-" });
  let tokenServer: TokenServer | undefined;
  let child: Deno.ChildProcess | undefined;
  try {
    const storage = join(dir, "storage");
    await Deno.mkdir(storage);
    const port = freePort();
    const credentials = options.auth && options.auth !== "none"
      ? { username: "tester", password: "s3cret pass" }
      : undefined;
    const pki = options.tls ? await makePki(join(dir, "pki")) : undefined;
    const lines = [
      "version: 0.1",
      "log:",
      "  level: info",
      "  accesslog:",
      "    disabled: true",
      "storage:",
      "  filesystem:",
      `    rootdirectory: ${yamlString(storage)}`,
      "  delete:",
      "    enabled: true",
      "  maintenance:",
      "    uploadpurging:",
      "      enabled: false",
      "http:",
      `  addr: 127.0.0.1:${port}`,
      `  secret: ${yamlString(crypto.randomUUID())}`,
    ];
    if (pki) {
      lines.push(
        "  tls:",
        `    certificate: ${yamlString(pki.serverCert)}`,
        `    key: ${yamlString(pki.serverKey)}`,
      );
      if (options.clientCerts) lines.push("    clientcas:", `      - ${yamlString(pki.caCert)}`);
    }
    if (options.auth === "htpasswd") {
      const file = join(dir, "htpasswd");
      let entries = await htpasswdLine(credentials!.username, credentials!.password);
      for (const [user, password] of Object.entries(options.users ?? {})) {
        entries += await htpasswdLine(user, password);
      }
      await Deno.writeTextFile(file, entries);
      lines.push("auth:", "  htpasswd:", "    realm: tug-test", `    path: ${yamlString(file)}`);
    } else if (options.auth === "token") {
      tokenServer = await startTokenServer(join(dir, "token"), {
        credentials: credentials!,
        service: "tug-test-registry",
      });
      lines.push(
        "auth:",
        "  token:",
        `    realm: ${yamlString(tokenServer.realm)}`,
        `    service: ${yamlString(tokenServer.service)}`,
        `    issuer: ${yamlString(tokenServer.issuer)}`,
        `    rootcertbundle: ${yamlString(tokenServer.certFile)}`,
      );
    }
    const config = join(dir, "config.yml");
    await Deno.writeTextFile(config, lines.join("\n") + "\n");
    const output: string[] = [];
    child = new Deno.Command("/usr/bin/docker-registry", {
      args: ["serve", config],
      stdout: "piped",
      stderr: "piped",
      stdin: "null",
      env: { OTEL_TRACES_EXPORTER: "none" },
    }).spawn();
    const decoder = new TextDecoder();
    const pump = async (s: ReadableStream<Uint8Array>) => {
      for await (const chunk of s) output.push(decoder.decode(chunk, { stream: true }));
    };
    const pumps = Promise.all([pump(child.stdout), pump(child.stderr)]).catch(() => {});
    const log = () => output.join("");
    const scheme = pki ? "https" : "http";
    const url = `${scheme}://127.0.0.1:${port}`;
    const probeClient = pki
      ? Deno.createHttpClient({
        caCerts: [await Deno.readTextFile(pki.caCert)],
        ...(options.clientCerts
          ? {
            cert: await Deno.readTextFile(pki.clientCert),
            key: await Deno.readTextFile(pki.clientKey),
          }
          : {}),
      })
      : undefined;
    try {
      await waitReady(url, child.pid, log, probeClient);
    } finally {
      probeClient?.close();
    }
    const proc = child;
    let stopped = false;
    const stop = async () => {
      if (stopped) return;
      stopped = true;
      try {
        proc.kill("SIGTERM");
      } catch {
        // gone already
      }
      const timer = setTimeout(() => {
        try {
          proc.kill("SIGKILL");
        } catch {
          // gone
        }
      }, 5000);
      await proc.status;
      clearTimeout(timer);
      await pumps;
      await tokenServer?.stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    };
    return {
      host: `127.0.0.1:${port}`,
      url,
      dir,
      storage,
      pid: proc.pid,
      ...(credentials ? { credentials } : {}),
      ...(pki ? { pki } : {}),
      ...(tokenServer ? { tokenServer } : {}),
      log,
      requests: () => parseRequests(log()),
      blobPath: (digest: string) => {
        const hex = digest.slice(digest.indexOf(":") + 1);
        return join(storage, "docker/registry/v2/blobs/sha256", hex.slice(0, 2), hex, "data");
      },
      stop,
      [Symbol.asyncDispose]: stop,
    };
  } catch (err) {
    if (child) {
      try {
        child.kill("SIGKILL");
      } catch {
        // gone
      }
      await child.status;
    }
    await tokenServer?.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw err;
  }
}

/** Parses the registry's "response completed" log lines. */
function parseRequests(log: string): LoggedRequest[] {
  const out: LoggedRequest[] = [];
  for (const line of log.split("\n")) {
    if (!line.includes("response completed")) continue;
    const method = /http\.request\.method=(\S+)/.exec(line)?.[1];
    const uri = /http\.request\.uri="?([^"\s]+)"?/.exec(line)?.[1];
    const status = /http\.response\.status=(\d+)/.exec(line)?.[1];
    if (method && uri && status) out.push({ method, uri, status: Number(status) });
  }
  return out;
}

/** Runs `fn` with a registry that is stopped afterwards, even on failure. */
export async function withRegistry<T>(
  options: RegistryOptions,
  fn: (registry: TestRegistry) => Promise<T>,
): Promise<T> {
  const registry = await startRegistry(options);
  try {
    return await fn(registry);
  } finally {
    await registry.stop();
  }
}

// ---------------------------------------------------------------------------
// Token server

/** A token server for registry token auth. */
export interface TokenServer {
  realm: string;
  service: string;
  issuer: string;
  /** The certificate (the registry's rootcertbundle). */
  certFile: string;
  /** Token requests served so far: the scopes asked and whether credentials came with them. */
  requests: { scopes: string[]; user?: string; status: number }[];
  /** When set, each token request waits for the promise it returns before it is answered (a stalled server). */
  hold?: (req: Request) => Promise<void> | undefined;
  /** When true, tokens grant only pull, to the credentials too (a read-only account). */
  pullOnly?: boolean;
  stop(): Promise<void>;
}

function b64url(data: Uint8Array | string): string {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

function pemBody(pem: string): Uint8Array<ArrayBuffer> {
  const b64 = pem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, "");
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

/**
 * Starts a token server on 127.0.0.1: GET `/token?service=…&scope=…` with
 * basic credentials grants the asked actions; without them, only `pull`
 * (anonymous pull, like Docker Hub's public repositories); wrong credentials
 * get 401.
 */
export async function startTokenServer(
  dir: string,
  options: {
    credentials: { username: string; password: string };
    service: string;
    expiresIn?: number;
  },
): Promise<TokenServer> {
  await Deno.mkdir(dir, { recursive: true });
  const keyFile = join(dir, "token.key");
  const certFile = join(dir, "token.crt");
  await run("openssl", [
    "genpkey",
    "-algorithm",
    "EC",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-out",
    keyFile,
  ]);
  await run("openssl", [
    "req",
    "-x509",
    "-new",
    "-key",
    keyFile,
    "-out",
    certFile,
    "-days",
    "2",
    "-subj",
    "/CN=tug test token issuer",
  ]);
  const key = await crypto.subtle.importKey(
    "pkcs8",
    pemBody(await Deno.readTextFile(keyFile)),
    { name: "ECDSA", namedCurve: "P-256" },
    false,
    ["sign"],
  );
  const x5c = [btoa(String.fromCharCode(...pemBody(await Deno.readTextFile(certFile))))];
  const issuer = "tug-test-issuer";
  const requests: TokenServer["requests"] = [];
  const self: TokenServer = {
    realm: "",
    service: options.service,
    issuer,
    certFile,
    requests,
    stop: () => server.shutdown(),
  };
  const expected = `Basic ${
    btoa(`${options.credentials.username}:${options.credentials.password}`)
  }`;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    await self.hold?.(req);
    const url = new URL(req.url);
    const scopes = url.searchParams.getAll("scope");
    const auth = req.headers.get("authorization");
    const user = auth === expected ? options.credentials.username : undefined;
    if (auth && !user) {
      requests.push({ scopes, status: 401 });
      return new Response(
        JSON.stringify({ errors: [{ code: "UNAUTHORIZED", message: "bad credentials" }] }),
        { status: 401 },
      );
    }
    const access = scopes.flatMap((s) => {
      const parts = s.split(":");
      if (parts.length < 3 || parts[0] !== "repository") return [];
      const actions = parts[parts.length - 1]!.split(",").filter((a) =>
        (user && !self.pullOnly) || a === "pull"
      );
      return [{ type: "repository", name: parts.slice(1, -1).join(":"), actions }];
    });
    const now = Math.floor(Date.now() / 1000);
    const header = { alg: "ES256", typ: "JWT", x5c };
    const claims = {
      iss: issuer,
      sub: user ?? "",
      aud: options.service,
      exp: now + (options.expiresIn ?? 300),
      nbf: now - 10,
      iat: now,
      jti: crypto.randomUUID(),
      access,
    };
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const sig = new Uint8Array(
      await crypto.subtle.sign(
        { name: "ECDSA", hash: "SHA-256" },
        key,
        new TextEncoder().encode(input),
      ),
    );
    requests.push({ scopes, ...(user ? { user } : {}), status: 200 });
    return Response.json({
      token: `${input}.${b64url(sig)}`,
      expires_in: options.expiresIn ?? 300,
      issued_at: new Date().toISOString(),
    });
  });
  self.realm = `http://127.0.0.1:${server.addr.port}/token`;
  return self;
}

// ---------------------------------------------------------------------------
// Recording proxy

/** A request seen by a {@link TestProxy}. */
export interface ProxiedRequest {
  method: string;
  /** Path and query, e.g. `/v2/x/blobs/sha256:…`. */
  path: string;
  headers: Record<string, string>;
  status: number;
}

/** Options for {@link startProxy}. */
export interface ProxyOptions {
  /** Stop sending the body of matching responses after this many bytes and hold the connection open. */
  stallAfter?: (req: Request) => number | undefined;
  /** Send only this many bytes of the body of matching responses, then break the connection off. */
  breakAfter?: (req: Request) => number | undefined;
  /** Remove `Range` from requests (the upstream then answers 200 with the whole blob). */
  stripRange?: boolean;
  /** Answer matching requests with this status and no body, without asking the upstream. */
  refuse?: (req: Request) => number | undefined;
  /** Response headers to remove from matching requests' answers. */
  dropHeaders?: (req: Request) => string[];
  /** Hold matching requests until the promise returned settles, then forward them. */
  hold?: (req: Request) => Promise<void> | undefined;
}

/**
 * A `stallAfter` for {@link startProxy} that, while `on`, holds every blob
 * download after `bytes` (a pull surely mid-way).
 */
export function blobStall(bytes: number, on = true): {
  on: boolean;
  stallAfter: (req: Request) => number | undefined;
} {
  const stall = {
    on,
    stallAfter: (req: Request) =>
      stall.on && req.method === "GET" && new URL(req.url).pathname.includes("/blobs/")
        ? bytes
        : undefined,
  };
  return stall;
}

/** A loopback HTTP proxy in front of a registry. */
export interface TestProxy {
  host: string;
  url: string;
  requests: ProxiedRequest[];
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Starts a proxy on 127.0.0.1 that forwards to `upstream` (an http URL) and records each request. */
export function startProxy(upstream: string, options: ProxyOptions = {}): TestProxy {
  const requests: ProxiedRequest[] = [];
  const stalls = new AbortController();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const url = new URL(req.url);
    const recorded: Record<string, string> = {};
    req.headers.forEach((v, k) => recorded[k] = v);
    await options.hold?.(req);
    const refused = options.refuse?.(req);
    if (refused !== undefined) {
      requests.push({
        method: req.method,
        path: url.pathname + url.search,
        headers: recorded,
        status: refused,
      });
      return new Response(null, { status: refused });
    }
    const headers = new Headers(req.headers);
    if (options.stripRange) headers.delete("range");
    headers.delete("host");
    const target = new URL(url.pathname + url.search, upstream);
    const res = await fetch(target, {
      method: req.method,
      headers,
      body: req.body,
      redirect: "manual",
    });
    requests.push({
      method: req.method,
      path: url.pathname + url.search,
      headers: recorded,
      status: res.status,
    });
    const out = new Headers(res.headers);
    for (const h of options.dropHeaders?.(req) ?? []) out.delete(h);
    const location = out.get("location");
    if (location) {
      out.set("location", location.replace(upstream.replace(/\/$/, ""), `http://${url.host}`));
    }
    const breakAt = options.breakAfter?.(req);
    if (breakAt !== undefined && res.body) {
      let left = breakAt;
      const reader = res.body.getReader();
      const body = new ReadableStream<Uint8Array>({
        async pull(controller) {
          const { value, done } = left > 0
            ? await reader.read()
            : { value: undefined, done: false };
          if (done) return controller.close();
          if (value && value.length < left) {
            left -= value.length;
            return controller.enqueue(value);
          }
          if (value && left > 0) controller.enqueue(value.subarray(0, left));
          left = 0;
          await reader.cancel().catch(() => {});
          // The server aborts the response: the client's body read fails mid-way.
          controller.error(new Error("connection broken off by the test proxy"));
        },
        cancel: () => reader.cancel(),
      });
      return new Response(body, { status: res.status, headers: out });
    }
    const stallAt = options.stallAfter?.(req);
    if (stallAt === undefined || !res.body) {
      return new Response(res.body, { status: res.status, headers: out });
    }
    let sent = 0;
    const reader = res.body.getReader();
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (sent >= stallAt) {
          // Hold the connection open without sending more, until the test ends.
          await new Promise<void>((resolve) =>
            stalls.signal.addEventListener("abort", () => resolve(), { once: true })
          );
          await reader.cancel().catch(() => {});
          controller.error(new Error("stalled response ended"));
          return;
        }
        const { value, done } = await reader.read();
        if (done) {
          controller.close();
          return;
        }
        const take = Math.min(value.length, stallAt - sent);
        controller.enqueue(value.subarray(0, take));
        sent += take;
      },
      cancel: () => reader.cancel(),
    });
    return new Response(body, { status: res.status, headers: out });
  });
  const stop = async () => {
    stalls.abort();
    await server.shutdown();
  };
  return {
    host: `127.0.0.1:${server.addr.port}`,
    url: `http://127.0.0.1:${server.addr.port}`,
    requests,
    stop,
    [Symbol.asyncDispose]: stop,
  };
}
