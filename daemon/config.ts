/**
 * The daemon's configuration: `/etc/tug/config.toml` (TOML 1.0, read with
 * smol-toml), then the daemon's flags on top. Every key is described once
 * in {@link CONFIG_KEYS}: its default, what it means, how it is checked.
 * `tug config default` renders that table (a comment per key) and
 * `tug config dump` renders the effective values the same way; both parse
 * back to what they show.
 *
 * An invalid value is an InvalidArgument naming the key
 * (`Invalid config api.address: …`); an unknown key is a warning naming it,
 * and is otherwise ignored.
 *
 * To add a key: add a field to {@link Config}, a default to
 * {@link defaultConfig} and an entry to {@link CONFIG_KEYS}.
 *
 * @module
 */

import { InvalidArgument, NotFound } from "../errors.ts";
import { formatDuration, formatSize, parseDuration, parseSize } from "../util/units.ts";
import { parseTomlDocument } from "../util/toml.ts";
import { MAX_FILES as MAX_LOG_FILES } from "../shim/logs.ts";

/** The effective configuration. Durations are in milliseconds, sizes in bytes. */
export interface Config {
  /** The format version of the file (1). */
  version: number;
  /** Persistent data: metadata.db, content/, snapshots/. */
  root: string;
  /** Runtime state: shims' sockets and state, lost at reboot. */
  state: string;
  api: {
    /** The API's unix socket. */
    address: string;
    /** The group that owns the socket (mode 0660). */
    gid: number;
    /** The largest JSON request body accepted, in bytes. */
    maxBodySize: number;
  };
  metrics: {
    /** `host:port` serving `/metrics` over TCP, or `""` for none. */
    address: string;
  };
  debug: {
    level: LogLevel;
  };
  images: {
    /** The snapshotter images are unpacked into. */
    snapshotter: "overlayfs" | "native";
    /** Layers downloaded at once per pull. */
    pullConcurrency: number;
    /** The largest uncompressed layer accepted, in bytes (0: no limit). */
    maxLayerSize: number;
    /** How long after an image or container is removed garbage collection runs (ms). */
    gcDelay: number;
  };
  registry: {
    /** The hosts.toml directory (containerd's certs.d layout). */
    configPath: string;
  };
  containers: {
    /** The cgroup containers are created under, as `<parent>/<namespace>/<id>`. */
    cgroupParent: string;
    /** Apply the default seccomp profile when a container names none and is not privileged. */
    seccompDefault: boolean;
    /** How long a stop waits after SIGTERM before SIGKILL (ms). */
    stopTimeout: number;
    /** The first delay before a restart policy restarts a container (ms); doubles per restart. */
    restartDelay: number;
    /** The longest delay between restarts (ms). */
    restartDelayMax: number;
  };
  logs: {
    /** Rotate a container's log file when it reaches this many bytes. */
    maxSize: number;
    /** Log files kept per container, the current one included. */
    maxFile: number;
  };
  shim: {
    /** The container label whose value groups containers into one shim (else: one shim per namespace). */
    groupLabel: string;
    /** How long a shim without containers waits before it exits (ms). */
    idleExit: number;
  };
}

/** Log levels, quietest first. */
export type LogLevel = "error" | "warn" | "info" | "debug";

/** The log levels, quietest first. */
export const LOG_LEVELS: readonly LogLevel[] = ["error", "warn", "info", "debug"];

/** Where the daemon reads its configuration by default. */
export const DEFAULT_CONFIG_PATH = "/etc/tug/config.toml";

/** The configuration a daemon has when nothing is configured. */
export function defaultConfig(): Config {
  return {
    version: 1,
    root: "/var/lib/tug",
    state: "/run/tug",
    api: { address: "/run/tug/tug.sock", gid: 0, maxBodySize: 1 << 20 },
    metrics: { address: "" },
    debug: { level: "info" },
    images: { snapshotter: "overlayfs", pullConcurrency: 3, maxLayerSize: 0, gcDelay: 1000 },
    registry: { configPath: "/etc/tug/certs.d" },
    containers: {
      cgroupParent: "/tug",
      seccompDefault: true,
      stopTimeout: 10_000,
      restartDelay: 100,
      restartDelayMax: 60_000,
    },
    logs: { maxSize: 10 << 20, maxFile: 3 },
    shim: { groupLabel: "io.tug.shim.group", idleExit: 30_000 },
  };
}

/** How a key's value is written and checked. */
type Kind =
  | { type: "int"; min: number; max: number }
  | { type: "bool" }
  | { type: "string"; check?: (v: string) => string | undefined }
  | { type: "path"; socket?: boolean; socketsUnder?: string }
  | { type: "enum"; values: readonly string[] }
  | { type: "size"; min?: number }
  | { type: "duration"; min?: number };

/** One configuration key. */
export interface ConfigKey {
  /** The dotted TOML name, e.g. `api.address`. */
  key: string;
  /** What it means, for `tug config default`. */
  doc: string;
  /** @internal How its value is written and checked. */
  kind: Kind;
}

const UNIX_PATH_MAX = 107;

function checkHostPort(v: string): string | undefined {
  if (v === "") return undefined;
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+)):(\d+)$/.exec(v);
  if (!m) return 'expected host:port (e.g. 127.0.0.1:1338), or "" for none';
  const port = Number(m[3]);
  if (port > 65535) return `port ${m[3]} is out of range 0-65535`;
  return undefined;
}

function checkCgroupParent(v: string): string | undefined {
  if (v === "") return "must not be empty";
  if (v.split("/").some((p) => p === "..")) return "must not contain ..";
  // deno-lint-ignore no-control-regex
  if (/[\x00-\x1f]/.test(v)) return "must not contain control characters";
  return undefined;
}

function checkLabelKey(v: string): string | undefined {
  if (v === "") return "must not be empty";
  if (/\s/.test(v)) return "must not contain whitespace";
  return undefined;
}

/** Every key of the configuration file, in file order (top-level keys first). */
export const CONFIG_KEYS: readonly ConfigKey[] = [
  { key: "version", doc: "Format version of this file.", kind: { type: "int", min: 1, max: 1 } },
  {
    key: "root",
    doc: "Persistent data: the metadata database, the content store and the snapshots.",
    kind: { type: "path" },
  },
  {
    key: "state",
    doc: "Runtime state: the shims' sockets, pid files and per-container state (lost at reboot).",
    // Room for the shims' sockets: <state>/shims/<group of up to 16 bytes>/shim.sock.
    kind: { type: "path", socketsUnder: "/shims/0123456789abcdef/shim.sock" },
  },
  {
    key: "api.address",
    doc: "The API's unix socket (mode 0660, owned by root and api.gid).",
    kind: { type: "path", socket: true },
  },
  {
    key: "api.gid",
    doc: "The group that owns the API socket; its members may use the API.",
    kind: { type: "int", min: 0, max: 4294967294 },
  },
  {
    key: "api.max_body_size",
    doc: "The largest JSON request body the API accepts (image imports are streams, not limited).",
    kind: { type: "size", min: 1024 },
  },
  {
    key: "metrics.address",
    doc:
      'host:port serving Prometheus metrics at /metrics over TCP (port 0: any free port, logged); "" serves none.',
    kind: { type: "string", check: checkHostPort },
  },
  {
    key: "debug.level",
    doc: "Log level: error, warn, info or debug.",
    kind: { type: "enum", values: LOG_LEVELS },
  },
  {
    key: "images.snapshotter",
    doc:
      "The snapshotter images are unpacked into: overlayfs or native (copies; works everywhere).",
    kind: { type: "enum", values: ["overlayfs", "native"] },
  },
  {
    key: "images.pull_concurrency",
    doc: "Layers downloaded at once per pull.",
    kind: { type: "int", min: 1, max: 64 },
  },
  {
    key: "images.max_layer_size",
    doc: 'The largest uncompressed layer a pull or import accepts, e.g. "8GiB"; 0 for no limit.',
    kind: { type: "size" },
  },
  {
    key: "images.gc_delay",
    doc: "How long after images or containers are removed garbage collection frees their space.",
    kind: { type: "duration" },
  },
  {
    key: "registry.config_path",
    doc:
      "Directory of per-registry hosts.toml files (mirrors, TLS, headers), laid out as containerd's certs.d.",
    kind: { type: "path" },
  },
  {
    key: "containers.cgroup_parent",
    doc:
      "The cgroup containers are created under, as <parent>/<namespace>/<id>; absolute from each hierarchy's root, or relative to the daemon's own cgroup.",
    kind: { type: "string", check: checkCgroupParent },
  },
  {
    key: "containers.seccomp_default",
    doc: "Apply the default seccomp profile to containers that name none and are not privileged.",
    kind: { type: "bool" },
  },
  {
    key: "containers.stop_timeout",
    doc: "How long stopping a container waits after SIGTERM before it sends SIGKILL.",
    kind: { type: "duration" },
  },
  {
    key: "containers.restart_delay",
    doc:
      "The delay before a restart policy first restarts a container; it doubles with each restart.",
    kind: { type: "duration" },
  },
  {
    key: "containers.restart_delay_max",
    doc: "The longest delay between two restarts of a container.",
    kind: { type: "duration", min: 1 },
  },
  {
    key: "logs.max_size",
    doc: "Rotate a container's log file when it reaches this size (default of --log-opt max-size).",
    kind: { type: "size", min: 4096 },
  },
  {
    key: "logs.max_file",
    doc: "Log files kept per container, the current one included (default of --log-opt max-file).",
    kind: { type: "int", min: 1, max: MAX_LOG_FILES },
  },
  {
    key: "shim.group_label",
    doc:
      "Containers with the same value of this label share a shim; containers without it share their namespace's shim.",
    kind: { type: "string", check: checkLabelKey },
  },
  {
    key: "shim.idle_exit",
    doc: "How long a shim that supervises no container any more waits before it exits.",
    kind: { type: "duration" },
  },
];

function camel(name: string): string {
  return name.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
}

function getPath(config: Config, key: string): unknown {
  let v: unknown = config;
  for (const part of key.split(".")) v = (v as Record<string, unknown>)[camel(part)];
  return v;
}

function setPath(config: Config, key: string, value: unknown): void {
  const parts = key.split(".");
  let o = config as unknown as Record<string, unknown>;
  for (const part of parts.slice(0, -1)) o = o[camel(part)] as Record<string, unknown>;
  o[camel(parts[parts.length - 1]!)] = value;
}

function typeName(v: unknown): string {
  if (Array.isArray(v)) return "an array";
  if (v === null) return "null";
  if (v instanceof Date) return "a date";
  if (typeof v === "object") return "a table";
  if (typeof v === "bigint" || typeof v === "number") return `the number ${v}`;
  if (typeof v === "string") return `the string ${JSON.stringify(v)}`;
  return `a ${typeof v}`;
}

function invalid(key: string, detail: string): InvalidArgument {
  return new InvalidArgument(`Invalid config ${key}: ${detail}`);
}

/** Checks and converts one value; throws InvalidArgument naming the key. */
function convert(spec: ConfigKey, raw: unknown): unknown {
  const { key, kind } = spec;
  const wrap = <T>(fn: () => T): T => {
    try {
      return fn();
    } catch (err) {
      if (err instanceof InvalidArgument) {
        throw invalid(key, err.message.replace(/^Invalid [^:]*: /, ""));
      }
      throw err;
    }
  };
  switch (kind.type) {
    case "int": {
      const n = typeof raw === "bigint" ? Number(raw) : raw;
      if (typeof n !== "number" || !Number.isInteger(n)) {
        throw invalid(key, `expected a whole number, got ${typeName(raw)}`);
      }
      if (n < kind.min || n > kind.max) {
        throw invalid(
          key,
          kind.min === kind.max
            ? `must be ${kind.min}, got ${n}`
            : `must be between ${kind.min} and ${kind.max}, got ${n}`,
        );
      }
      return n;
    }
    case "bool":
      if (typeof raw !== "boolean") {
        throw invalid(key, `expected true or false, got ${typeName(raw)}`);
      }
      return raw;
    case "string": {
      if (typeof raw !== "string") throw invalid(key, `expected a string, got ${typeName(raw)}`);
      const problem = kind.check?.(raw);
      if (problem) throw invalid(key, `${JSON.stringify(raw)}: ${problem}`);
      return raw;
    }
    case "path": {
      if (typeof raw !== "string") throw invalid(key, `expected a path, got ${typeName(raw)}`);
      if (!raw.startsWith("/")) {
        throw invalid(key, `${JSON.stringify(raw)} is not an absolute path`);
      }
      // deno-lint-ignore no-control-regex
      if (/[\x00-\x1f]/.test(raw)) {
        throw invalid(key, `${JSON.stringify(raw)} contains control characters`);
      }
      if (
        kind.socketsUnder &&
        new TextEncoder().encode(raw.replace(/\/+$/, "") + kind.socketsUnder).length > UNIX_PATH_MAX
      ) {
        throw invalid(
          key,
          `${JSON.stringify(raw)} is too long: the shims' sockets under it (${
            JSON.stringify(kind.socketsUnder)
          }) would be longer than a unix socket path may be (${UNIX_PATH_MAX} bytes)`,
        );
      }
      if (kind.socket && new TextEncoder().encode(raw).length > UNIX_PATH_MAX) {
        throw invalid(
          key,
          `${
            JSON.stringify(raw)
          } is longer than a unix socket path may be (${UNIX_PATH_MAX} bytes)`,
        );
      }
      return raw.length > 1 ? raw.replace(/\/+$/, "") : raw;
    }
    case "enum":
      if (typeof raw !== "string" || !kind.values.includes(raw)) {
        throw invalid(key, `expected one of ${kind.values.join(", ")}, got ${typeName(raw)}`);
      }
      return raw;
    case "size": {
      const n = typeof raw === "bigint" ? Number(raw) : raw;
      if (typeof n !== "number" && typeof n !== "string") {
        throw invalid(
          key,
          `expected a size such as "10MiB" or a number of bytes, got ${typeName(raw)}`,
        );
      }
      const bytes = wrap(() => parseSize(n, key));
      if (kind.min !== undefined && bytes < kind.min) {
        throw invalid(key, `must be at least ${formatSize(kind.min)}, got ${formatSize(bytes)}`);
      }
      return bytes;
    }
    case "duration": {
      if (typeof raw !== "string") {
        throw invalid(key, `expected a duration such as "10s", got ${typeName(raw)}`);
      }
      const ms = wrap(() => parseDuration(raw, key));
      if (kind.min !== undefined && ms < kind.min) {
        throw invalid(key, `must be at least ${formatDuration(kind.min)}`);
      }
      return ms;
    }
  }
}

/** What {@link parseConfig} found. */
export interface ParsedConfig {
  config: Config;
  /** One message per unknown key or table, naming it. */
  warnings: string[];
}

/**
 * Parses configuration text over the defaults. Throws InvalidArgument for a
 * TOML syntax error (naming `source`) or an invalid value (naming the key).
 */
export function parseConfig(text: string, source = "config"): ParsedConfig {
  let doc: Record<string, unknown>;
  try {
    doc = parseTomlDocument(text);
  } catch (err) {
    const detail = err instanceof SyntaxError ? err.message : String(err);
    throw new InvalidArgument(`Parse ${source}: ${detail}`, { cause: err });
  }
  const config = defaultConfig();
  const warnings: string[] = [];
  const byKey = new Map(CONFIG_KEYS.map((k) => [k.key, k]));
  const tables = new Set(
    CONFIG_KEYS.filter((k) => k.key.includes(".")).map((k) => k.key.split(".")[0]!),
  );
  const walk = (obj: Record<string, unknown>, prefix: string) => {
    for (const [name, value] of Object.entries(obj)) {
      const key = prefix ? `${prefix}.${name}` : name;
      const spec = byKey.get(key);
      if (spec) {
        setPath(config, key, convert(spec, value));
      } else if (!prefix && tables.has(name)) {
        if (
          typeof value !== "object" || value === null || Array.isArray(value) ||
          value instanceof Date
        ) {
          throw invalid(key, `expected a table, got ${typeName(value)}`);
        }
        walk(value as Record<string, unknown>, key);
      } else {
        warnings.push(`Unknown config key ${key} in ${source}: ignored`);
      }
    }
  };
  walk(doc, "");
  return { config, warnings };
}

/** Overrides from the daemon's flags. */
export interface ConfigOverrides {
  root?: string;
  state?: string;
  address?: string;
  logLevel?: string;
  metricsAddress?: string;
}

/** Options for {@link loadConfig}. */
export interface LoadConfigOptions extends ConfigOverrides {
  /** The file (default {@link DEFAULT_CONFIG_PATH}). */
  path?: string;
  /** True when the path was given explicitly: then a missing file is an error. */
  required?: boolean;
}

/**
 * Reads the configuration file (absent: the defaults, unless `required`),
 * then applies the flags' overrides, each checked as its key would be.
 */
export async function loadConfig(options: LoadConfigOptions = {}): Promise<ParsedConfig> {
  const path = options.path ?? DEFAULT_CONFIG_PATH;
  let parsed: ParsedConfig;
  try {
    parsed = parseConfig(await Deno.readTextFile(path), path);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) {
      if (err instanceof InvalidArgument) throw err;
      throw new InvalidArgument(`Read config ${path}: ${(err as Error).message}`, { cause: err });
    }
    if (options.required) throw new NotFound(`Read config ${path}: no such file`);
    parsed = { config: defaultConfig(), warnings: [] };
  }
  applyOverrides(parsed.config, options);
  return parsed;
}

/** Applies flag overrides to `config`, checking each as its key. */
export function applyOverrides(config: Config, overrides: ConfigOverrides): void {
  const set = (key: string, value: string | undefined) => {
    if (value === undefined) return;
    setPath(config, key, convert(CONFIG_KEYS.find((k) => k.key === key)!, value));
  };
  set("root", overrides.root);
  set("state", overrides.state);
  set("api.address", overrides.address);
  set("debug.level", overrides.logLevel);
  set("metrics.address", overrides.metricsAddress);
}

function tomlValue(spec: ConfigKey, value: unknown): string {
  switch (spec.kind.type) {
    case "size":
      return value === 0 ? "0" : JSON.stringify(formatSize(value as number));
    case "duration":
      return JSON.stringify(formatDuration(value as number));
    case "int":
    case "bool":
      return String(value);
    default:
      return JSON.stringify(value);
  }
}

function wrapComment(text: string, width = 100): string[] {
  const lines: string[] = [];
  let line = "#";
  for (const word of text.split(" ")) {
    if (line.length + 1 + word.length > width && line !== "#") {
      lines.push(line);
      line = "#";
    }
    line += ` ${word}`;
  }
  lines.push(line);
  return lines;
}

/**
 * Renders `config` as a TOML file with a comment per key, in
 * {@link CONFIG_KEYS} order; {@link parseConfig} reads it back unchanged.
 */
export function renderConfig(config: Config, header?: string): string {
  const out: string[] = [];
  if (header) out.push(...header.split("\n").map((l) => (l ? `# ${l}` : "#")), "");
  let table = "";
  for (const spec of CONFIG_KEYS) {
    const dot = spec.key.indexOf(".");
    const t = dot < 0 ? "" : spec.key.slice(0, dot);
    const name = dot < 0 ? spec.key : spec.key.slice(dot + 1);
    if (t !== table) {
      out.push("", `[${t}]`);
      table = t;
    }
    out.push(...wrapComment(spec.doc), `${name} = ${tomlValue(spec, getPath(config, spec.key))}`);
  }
  return out.join("\n").replace(/^\n+/, "") + "\n";
}

/** The complete default configuration file, as `tug config default` prints it. */
export function renderDefaultConfig(): string {
  return renderConfig(
    defaultConfig(),
    "tug daemon configuration. Every key is optional: a missing key has the value shown here.\nDurations: 500ms, 10s, 1m30s. Sizes: bytes, or 64KiB, 10MiB, 1GiB.",
  );
}
