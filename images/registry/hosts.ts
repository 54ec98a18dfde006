/**
 * Registry hosts: which servers serve a registry namespace (`docker.io`,
 * `myregistry:5000`), in which order, with which capabilities and TLS
 * settings. Compatible with containerd's `certs.d/<host>/hosts.toml`
 * (docs/hosts.md):
 *
 * - the directory for a namespace is the first of `<host>_<port>_`,
 *   `<host>:<port>` and `_default` that exists under the hosts directory;
 * - `[host."…"]` tables are mirrors tried first, in file order; `server` is
 *   tried last (when absent, the namespace's own server);
 * - `capabilities` (`pull`, `resolve`, `push`; all when absent), `ca`
 *   (path or paths, relative to the file), `client` (a cert path or a
 *   `[cert, key]` pair; one per host, as Deno's HTTP client presents one
 *   certificate), `skip_verify`, `[header]`, `override_path`;
 * - the TLS files are read and checked with the configuration (a CA file
 *   must hold a PEM certificate, a certificate and key must make a pair);
 * - a directory without hosts.toml uses Docker's certificate files
 *   (`*.crt` CAs, `*.cert` + `*.key` client pairs);
 * - a mirror (a host other than the namespace's server) gets `?ns=<namespace>`;
 * - a change under the directory needs no restart: {@link loadRegistryHosts}
 *   says which paths the hosts depend on, and their stamp.
 *
 * Without configuration, `docker.io` is served by `https://registry-1.docker.io`,
 * localhost and loopback addresses by HTTPS with a fallback to plain HTTP
 * (as containerd does), and other hosts by HTTPS (HTTP with `plainHttp`).
 *
 * @module
 */

import { isAbsolute, join } from "../../util/path.ts";
import { InvalidArgument } from "../../errors.ts";
import { parseTomlDocument } from "../../util/toml.ts";

/** What a host may be used for. */
export type HostCapability = "pull" | "resolve" | "push";

/** One server that can answer for a registry namespace. */
export interface RegistryHost {
  /** The namespace it serves (the reference's domain), e.g. `docker.io`. */
  namespace: string;
  scheme: "http" | "https";
  /** `host[:port]` to connect to, e.g. `registry-1.docker.io`. */
  host: string;
  /** API root path, `/v2` unless `override_path` says otherwise. */
  path: string;
  capabilities: HostCapability[];
  /** Extra request headers (`[header]`). */
  header: Record<string, string[]>;
  /** PEM files of extra CAs (`ca`). */
  caFiles: string[];
  /**
   * The client certificate and key files (at most one pair); an empty key
   * means the key is in the certificate file.
   */
  clientPairs: [string, string][];
  /** What the files of `caFiles` and `clientPairs` held when the configuration was read. */
  tls: HostTls;
  /** Do not verify the server's certificate (`skip_verify`). */
  skipVerify: boolean;
  /** Try HTTPS first and fall back to plain HTTP when the TLS handshake fails (defaulted localhost). */
  httpFallback: boolean;
  /** True for a host other than the namespace's own server: requests carry `?ns=<namespace>`. */
  mirror: boolean;
}

/** The PEM texts of a host's TLS files, read (and checked) with its configuration. */
export interface HostTls {
  /** One text per CA file. */
  ca: string[];
  /** The client certificate (with its chain). */
  cert?: string;
  /** The client certificate's private key. */
  key?: string;
}

/** Options for {@link registryHosts}. */
export interface HostsOptions {
  /** A certs.d-style directory (containerd's `--hosts-dir`); none by default. */
  hostsDir?: string;
  /** Use plain HTTP for the namespace's default server (`ctr --plain-http`). */
  plainHttp?: boolean;
  /**
   * Skip certificate verification for every host whose configuration does
   * not set `skip_verify` (`ctr --skip-verify`: containerd's default TLS
   * configuration).
   */
  skipVerify?: boolean;
  /** Told of what a hosts.toml holds that tug ignores (unknown keys), one message each. */
  warn?: (message: string) => void;
}

const ALL_CAPABILITIES: HostCapability[] = ["pull", "resolve", "push"];

/** The keys of a `[host."…"]` table; the top level has `server` and `host` too. */
const HOST_KEYS = new Set([
  "capabilities",
  "ca",
  "client",
  "skip_verify",
  "header",
  "override_path",
]);

interface HostConfig {
  scheme?: "http" | "https";
  host?: string;
  path?: string;
  capabilities: HostCapability[];
  caFiles?: string[];
  clientPairs?: [string, string][];
  skipVerify?: boolean;
  header?: Record<string, string[]>;
}

/** True for `localhost` and loopback addresses (with or without a port). */
export function isLocalhost(host: string): boolean {
  let name = host;
  const bracket = /^\[([^\]]+)\](?::\d+)?$/.exec(host);
  if (bracket) name = bracket[1]!;
  else if (/^[^:]+:\d+$/.test(host)) name = host.slice(0, host.lastIndexOf(":"));
  return name === "localhost" || /^127\.\d+\.\d+\.\d+$/.test(name) || name === "::1";
}

function portOf(host: string): string {
  const m = /:(\d+)$/.exec(host);
  return m && !/^\[[^\]]*$/.test(host) ? m[1]! : "";
}

/** The directories (in order) where the configuration of `namespace` may be, under `hostsDir`. */
export function hostDirectories(hostsDir: string, namespace: string): string[] {
  const dirs: string[] = [];
  const colon = namespace.lastIndexOf(":");
  if (colon > 0 && !namespace.endsWith("]")) {
    dirs.push(join(hostsDir, `${namespace.slice(0, colon)}_${namespace.slice(colon + 1)}_`));
  }
  dirs.push(join(hostsDir, namespace), join(hostsDir, "_default"));
  return dirs;
}

function fail(file: string, why: string): InvalidArgument {
  return new InvalidArgument(`read registry hosts file ${file} failed: ${why}`);
}

/**
 * Why several client certificate pairs are refused: Deno's HTTP client
 * presents one certificate, where containerd offers the server each of its
 * pairs; taking the first would fail where the registry wants another.
 */
function onePair(where: string, pairs: [string, string][]): string {
  return `only one client certificate pair is supported per host: ${where} ${pairs.length} (${
    pairs.map((p) => p[0]).join(", ")
  }); keep the one the registry accepts`;
}

function stringList(value: unknown, what: string, file: string): string[] {
  if (typeof value === "string") return [value];
  if (Array.isArray(value) && value.every((v) => typeof v === "string")) return value as string[];
  throw fail(file, `${what} must be a string or an array of strings`);
}

function absolute(path: string, base: string): string {
  return isAbsolute(path) ? path : join(base, path);
}

function parseHostConfig(
  server: string,
  /** `server` or `host` (the key naming the URL), for messages. */
  what: "server" | "host",
  table: Record<string, unknown>,
  dir: string,
  file: string,
): HostConfig {
  const result: HostConfig = { capabilities: ALL_CAPABILITIES };
  if (table.override_path !== undefined && typeof table.override_path !== "boolean") {
    throw fail(file, "override_path must be true or false");
  }
  if (server !== "") {
    // As containerd: no scheme means https. Any scheme but http and https is refused, where
    // containerd takes "ftp://h" for a host named "ftp". (A name, a colon and a port is a host.)
    const scheme = (/^([^:/?#]*):\/\//.exec(server) ??
      /^([a-z][a-z0-9+.-]*):(?!\d+(?:[/?#]|$))/i.exec(server))?.[1]?.toLowerCase();
    if (scheme !== undefined && scheme !== "http" && scheme !== "https") {
      throw fail(file, `${what} "${server}" must be an http:// or https:// URL`);
    }
    let url: URL | undefined;
    try {
      url = new URL(scheme ? server : `https://${server}`);
    } catch {
      // refused below
    }
    if (!url || !/^(?:[a-z0-9_](?:[a-z0-9_.-]*[a-z0-9_])?|\[[0-9a-f:.]+\])$/i.test(url.hostname)) {
      throw fail(file, `${what} "${server}" is not a URL`);
    }
    result.scheme = url.protocol === "http:" ? "http" : "https";
    result.host = url.host;
    let path = url.pathname.replace(/\/+$/, "");
    const override = table.override_path === true;
    if (path !== "") {
      path = path.replace(/\/{2,}/g, "/");
      if (!path.endsWith("/v2") && !override) path += "/v2";
    } else if (!override) {
      path = "/v2";
    }
    result.path = path;
  }
  if (table.skip_verify !== undefined) {
    if (typeof table.skip_verify !== "boolean") {
      throw fail(file, "skip_verify must be true or false");
    }
    result.skipVerify = table.skip_verify;
  }
  if (table.capabilities !== undefined) {
    const caps = stringList(table.capabilities, "capabilities", file);
    if (caps.length > 0) {
      result.capabilities = caps.map((c) => {
        const lower = c.toLowerCase();
        if (lower !== "pull" && lower !== "resolve" && lower !== "push") {
          throw fail(file, `unknown capability "${c}" (want pull, resolve or push)`);
        }
        return lower;
      });
    }
  }
  if (table.ca !== undefined) {
    result.caFiles = stringList(table.ca, "ca", file).map((p) => absolute(p, dir));
  }
  if (table.client !== undefined) {
    const client = table.client;
    const pairs: [string, string][] = [];
    if (typeof client === "string") {
      pairs.push([absolute(client, dir), ""]);
    } else if (Array.isArray(client)) {
      for (const item of client) {
        if (typeof item === "string") {
          pairs.push([absolute(item, dir), ""]);
        } else if (
          Array.isArray(item) && item.length === 2 && item.every((x) => typeof x === "string")
        ) {
          pairs.push([
            absolute(item[0] as string, dir),
            item[1] === "" ? "" : absolute(item[1] as string, dir),
          ]);
        } else {
          throw fail(
            file,
            "client must be a path, an array of paths, or an array of [cert, key] pairs",
          );
        }
      }
    } else {
      throw fail(
        file,
        "client must be a path, an array of paths, or an array of [cert, key] pairs",
      );
    }
    if (pairs.length > 1) throw fail(file, onePair("client names", pairs));
    result.clientPairs = pairs;
  }
  if (table.header !== undefined) {
    if (typeof table.header !== "object" || table.header === null || Array.isArray(table.header)) {
      throw fail(file, "header must be a table");
    }
    const header: Record<string, string[]> = {};
    for (const [key, value] of Object.entries(table.header as Record<string, unknown>)) {
      header[key] = stringList(value, `header "${key}"`, file);
    }
    result.header = header;
  }
  return result;
}

/** Warns of the keys of `table` tug does not know (containerd knows more, e.g. `dial_timeout`). */
function warnUnknown(
  table: Record<string, unknown>,
  prefix: string,
  file: string,
  warn: ((message: string) => void) | undefined,
): void {
  if (!warn) return;
  for (const key of Object.keys(table)) {
    if (HOST_KEYS.has(key) || (prefix === "" && (key === "server" || key === "host"))) continue;
    warn(`Unknown registry hosts key ${prefix}${key} in ${file}: ignored`);
  }
}

/**
 * Parses the text of a hosts.toml: the mirrors in file order, then the
 * server (`host` undefined when the file names none). Paths are made
 * absolute against `dir`. Throws InvalidArgument naming the file; tells
 * `warn` of unknown keys.
 */
function parseHostsFile(
  text: string,
  dir: string,
  file: string,
  warn?: (message: string) => void,
): HostConfig[] {
  let doc: Record<string, unknown>;
  try {
    doc = parseTomlDocument(text);
  } catch (err) {
    throw fail(file, (err as Error).message);
  }
  const hosts: HostConfig[] = [];
  const tables = doc.host;
  if (tables !== undefined) {
    if (typeof tables !== "object" || tables === null || Array.isArray(tables)) {
      throw fail(file, 'host must be a table of [host."<url>"] tables');
    }
    // smol-toml keeps keys in file order (string keys of a plain object keep insertion order).
    for (const [url, table] of Object.entries(tables as Record<string, unknown>)) {
      if (typeof table !== "object" || table === null || Array.isArray(table)) {
        throw fail(file, `host "${url}" must be a table`);
      }
      hosts.push(parseHostConfig(url, "host", table as Record<string, unknown>, dir, file));
      warnUnknown(table as Record<string, unknown>, `host.${JSON.stringify(url)}.`, file, warn);
    }
  }
  const server = doc.server;
  if (server !== undefined && typeof server !== "string") {
    throw fail(file, "server must be a string");
  }
  hosts.push(parseHostConfig(server ?? "", "server", doc, dir, file));
  warnUnknown(doc, "", file, warn);
  return hosts;
}

async function loadCertFiles(dir: string): Promise<HostConfig[]> {
  const caFiles: string[] = [];
  const clientPairs: [string, string][] = [];
  try {
    const names: string[] = [];
    for await (const e of Deno.readDir(dir)) if (!e.isDirectory) names.push(e.name);
    names.sort();
    for (const name of names) {
      if (name.endsWith(".crt")) caFiles.push(join(dir, name));
      if (name.endsWith(".cert")) {
        const key = name.slice(0, -".cert".length) + ".key";
        clientPairs.push([join(dir, name), names.includes(key) ? join(dir, key) : ""]);
      }
    }
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  if (clientPairs.length > 1) {
    throw new InvalidArgument(
      `read registry certificates in ${dir} failed: ${onePair("the directory has", clientPairs)}`,
    );
  }
  return [{
    capabilities: ALL_CAPABILITIES,
    ...(caFiles.length ? { caFiles } : {}),
    ...(clientPairs.length ? { clientPairs } : {}),
  }];
}

async function findHostDir(hostsDir: string, namespace: string): Promise<string | undefined> {
  for (const dir of hostDirectories(hostsDir, namespace)) {
    try {
      if ((await Deno.stat(dir)).isDirectory) return dir;
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
  }
  return undefined;
}

/**
 * Parses a hosts.toml text for `namespace` and returns the hosts to try, in
 * order (what {@link registryHosts} returns for a directory holding it).
 */
export async function parseHostsToml(
  text: string,
  options: HostsOptions & { namespace: string; dir: string },
): Promise<RegistryHost[]> {
  const file = join(options.dir, "hosts.toml");
  const hosts = finish(
    options.namespace,
    parseHostsFile(text, options.dir, file, options.warn),
    options,
  );
  await readTls(hosts, `read registry hosts file ${file} failed`);
  return hosts;
}

/**
 * Reads the CA and client certificate files of `hosts` into their `tls`,
 * refusing (InvalidArgument, after `failed`) what cannot be used: an
 * unreadable file, a CA file without a PEM certificate (containerd: "unable
 * to load CA cert"), a certificate and key that do not make a pair.
 */
async function readTls(hosts: RegistryHost[], failed: string): Promise<void> {
  const read = async (path: string, what: string) => {
    try {
      return await Deno.readTextFile(path);
    } catch (err) {
      throw new InvalidArgument(
        `${failed}: read ${what} ${path} failed: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
  };
  const check = (
    options:
      | Deno.CreateHttpClientOptions
      | (Deno.CreateHttpClientOptions & Deno.TlsCertifiedKeyPem),
    what: string,
  ) => {
    try {
      Deno.createHttpClient(options).close();
    } catch (err) {
      throw new InvalidArgument(`${failed}: unable to load ${what}: ${(err as Error).message}`, {
        cause: err,
      });
    }
  };
  for (const host of hosts) {
    const tls: HostTls = { ca: [] };
    for (const file of host.caFiles) {
      const text = await read(file, "CA certificate");
      // Deno's client skips what is not PEM: a file without a certificate would add no CA.
      if (!text.includes("-----BEGIN CERTIFICATE-----")) {
        throw new InvalidArgument(
          `${failed}: unable to load CA certificate ${file}: no PEM certificate in it`,
        );
      }
      check({ caCerts: [text] }, `CA certificate ${file}`);
      tls.ca.push(text);
    }
    const pair = host.clientPairs[0];
    if (pair) {
      tls.cert = await read(pair[0], "client certificate");
      tls.key = pair[1] ? await read(pair[1], "client key") : tls.cert;
      check(
        { cert: tls.cert, key: tls.key },
        `client certificate ${pair[0]}${pair[1] ? ` with key ${pair[1]}` : ""}`,
      );
    }
    host.tls = tls;
  }
}

function finish(namespace: string, configs: HostConfig[], options: HostsOptions): RegistryHost[] {
  const last = configs[configs.length - 1];
  let defaultedLocalhost = false;
  if (last && last.host === undefined) {
    // The namespace's own server, with containerd's defaults.
    last.path = "/v2";
    last.capabilities = ALL_CAPABILITIES;
    if (namespace === "docker.io") {
      last.scheme = "https";
      last.host = "registry-1.docker.io";
    } else {
      last.host = namespace;
      if (options.plainHttp) {
        last.scheme = "http";
      } else if (isLocalhost(namespace)) {
        // containerd: HTTPS without verification on 443 or no port, plain HTTP on 80,
        // and on any other port HTTPS first with a fallback to plain HTTP.
        const port = portOf(namespace);
        last.scheme = port === "80" ? "http" : "https";
        if (port !== "80") last.skipVerify ??= true;
        defaultedLocalhost = port !== "" && port !== "443" && port !== "80";
      } else {
        last.scheme = "https";
      }
    }
  }
  return configs.map((c) => {
    const host = c.host!;
    let scheme = c.scheme ?? "https";
    let httpFallback = c === last && defaultedLocalhost;
    const explicitTls = c.caFiles !== undefined || c.clientPairs !== undefined ||
      c.skipVerify !== undefined;
    if (scheme === "http" && explicitTls && portOf(host) !== "80") {
      // containerd: an http host with TLS settings tries HTTPS first.
      scheme = "https";
      httpFallback = true;
    }
    return {
      namespace,
      scheme,
      host,
      path: c.path ?? "/v2",
      capabilities: c.capabilities,
      header: c.header ?? {},
      caFiles: c.caFiles ?? [],
      clientPairs: c.clientPairs ?? [],
      // containerd: --skip-verify is the default TLS configuration, which a host's own skip_verify
      // overrides (its ca and client add to it).
      skipVerify: c.skipVerify ?? options.skipVerify ?? false,
      tls: { ca: [] },
      httpFallback,
      mirror: host !== namespace && !(namespace === "docker.io" && host === "registry-1.docker.io"),
    };
  });
}

/**
 * The hosts to try for registry `namespace`, in order: configured mirrors
 * first, the server last. Reads `<hostsDir>/<namespace>/hosts.toml` (or the
 * Docker certificate files there, or `_default`) when `hostsDir` is given.
 */
export async function registryHosts(
  namespace: string,
  options: HostsOptions = {},
): Promise<RegistryHost[]> {
  return (await loadRegistryHosts(namespace, options)).hosts;
}

/** What {@link loadRegistryHosts} read, and how to tell when it is out of date. */
export interface LoadedHosts {
  hosts: RegistryHost[];
  /**
   * The paths the hosts depend on: the candidate directories, hosts.toml,
   * the TLS files. A file created, changed, replaced or removed there
   * changes their {@link filesStamp}.
   */
  files: string[];
  /**
   * The {@link filesStamp} of `files`, taken before each was read; absent
   * when one had changed too recently for its time to tell the next change
   * (see {@link RECENT_MS}): then the hosts are to be read again.
   */
  stamp?: string;
}

/**
 * A file modified less than this before it was read may change again with
 * the same modification time (the kernel's file times advance by clock
 * ticks; some filesystems keep seconds): git's "racily clean" entries.
 */
export const RECENT_MS = 2_000;

/**
 * {@link registryHosts}, with the paths it depends on and their stamp:
 * containerd reads a namespace's directory for each pull, so a change
 * there needs no restart; a cache of these hosts stays true by comparing
 * `filesStamp(files)` with `stamp` (a stat per path, no reads).
 */
export async function loadRegistryHosts(
  namespace: string,
  options: HostsOptions = {},
): Promise<LoadedHosts> {
  const before = Date.now();
  const files: string[] = [];
  const stamps: string[] = [];
  let recent = false;
  const depend = async (paths: string[]) => {
    const fresh = paths.filter((p) => !files.includes(p));
    files.push(...fresh);
    for (const stat of await statPaths(fresh)) {
      stamps.push(stat.line);
      if (stat.mtime !== undefined && before - stat.mtime < RECENT_MS) recent = true;
    }
  };
  let configs: HostConfig[] | undefined;
  let failed = "";
  if (options.hostsDir) {
    await depend(hostDirectories(options.hostsDir, namespace));
    const dir = await findHostDir(options.hostsDir, namespace);
    if (dir !== undefined) {
      const file = join(dir, "hosts.toml");
      await depend([file]);
      let text: string | undefined;
      try {
        text = await Deno.readTextFile(file);
      } catch (err) {
        if (!(err instanceof Deno.errors.NotFound)) throw err;
      }
      configs = text ? parseHostsFile(text, dir, file, options.warn) : await loadCertFiles(dir);
      failed = text
        ? `read registry hosts file ${file} failed`
        : `read registry certificates in ${dir} failed`;
    }
  }
  const hosts = finish(namespace, configs ?? [{ capabilities: ALL_CAPABILITIES }], options);
  await depend(hosts.flatMap((h) => [...h.caFiles, ...h.clientPairs.flat().filter(Boolean)]));
  await readTls(hosts, failed);
  return { hosts, files, ...(recent ? {} : { stamp: stamps.join("\n") }) };
}

/**
 * One line per path of what a stat says of it (device, inode, size, times;
 * `-` when it does not exist): a file rewritten, replaced (a new inode) or
 * removed, or a directory whose entries changed, changes it.
 */
export async function filesStamp(paths: string[]): Promise<string> {
  return (await statPaths(paths)).map((s) => s.line).join("\n");
}

function statPaths(paths: string[]): Promise<{ line: string; mtime?: number }[]> {
  return Promise.all(paths.map(async (path) => {
    try {
      const i = await Deno.stat(path);
      const mtime = i.mtime?.getTime();
      return {
        line: `${i.dev}:${i.ino}:${i.size}:${mtime}:${i.ctime?.getTime()}`,
        ...(mtime !== undefined ? { mtime } : {}),
      };
    } catch (err) {
      return { line: err instanceof Deno.errors.NotFound ? "-" : `error ${(err as Error).name}` };
    }
  }));
}

/** The hosts of `hosts` that have `capability`, in order. */
export function hostsWith(hosts: RegistryHost[], capability: HostCapability): RegistryHost[] {
  return hosts.filter((h) => h.capabilities.includes(capability));
}
