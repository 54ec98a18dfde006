/**
 * Loading an OCI bundle and turning its config.json into an {@link InitPlan}:
 * everything validated and resolved (namespace flags, mount flags, device
 * numbers, capability masks, rlimit numbers) in the parent, so that the
 * container's init, a forked child, only executes. A bad bundle fails here
 * with an error naming the field, before anything is created.
 *
 * @module
 */

import { isAbsolute, join, resolve } from "../util/path.ts";
import { MS_REC, MS_SLAVE, NAMESPACES, RLIMITS } from "../ffi/constants.ts";
import { InvalidArgument, NotImplemented } from "../errors.ts";
import { type CapabilityMasks, capabilityMasks } from "./caps.ts";
import { parseMountOptions, PROPAGATION } from "./mount_options.ts";
import type { Hook, LinuxDeviceCgroup, Mount, Process, Spec } from "./spec.ts";

/** A mount, resolved: flags parsed, source made absolute for binds. */
export interface PlannedMount {
  destination: string;
  type: string;
  source: string;
  flags: number;
  cleared: number;
  propagation: number[];
  data: string;
  bind: boolean;
  extensions: string[];
}

/** A device node to create in the container's /dev. */
export interface PlannedDevice {
  path: string;
  /** S_IFCHR, S_IFBLK or S_IFIFO. */
  kind: number;
  major: number;
  minor: number;
  mode: number;
  uid: number;
  gid: number;
}

/** A namespace to join by path. */
export interface JoinNamespace {
  type: string;
  flag: number;
  path: string;
}

/** Everything the container's init needs, resolved in the parent. */
export interface InitPlan {
  id: string;
  bundle: string;
  rootfs: string;
  readonlyRoot: boolean;
  /** Flags for making "/" slave/private/shared before the rootfs bind (default MS_SLAVE|MS_REC). */
  rootPropagation: number;
  /** Namespaces the init creates with unshare (never pid, which the parent unshares before fork, nor time). */
  unshareFlags: number;
  /** Namespaces the init joins with setns (pid is joined by the parent before fork). */
  join: JoinNamespace[];
  /** Whether the container gets a new pid namespace (the parent unshares it before fork). */
  newPid: boolean;
  pidPath?: string;
  /** Whether the init makes a new time namespace (unshare, offsets, then setns into it). */
  newTime: boolean;
  timeOffsets?: { monotonic?: [number, number]; boottime?: [number, number] };
  newMount: boolean;
  newCgroupNs: boolean;
  mounts: PlannedMount[];
  /** True when /dev is not bind-mounted from the host, so tug populates it. */
  setupDev: boolean;
  devices: PlannedDevice[];
  hostname?: string;
  domainname?: string;
  sysctl: [string, string][];
  maskedPaths: string[];
  readonlyPaths: string[];
  process: {
    args: string[];
    env: string[];
    cwd: string;
    uid: number;
    gid: number;
    additionalGids: number[];
    umask?: number;
    terminal: boolean;
    consoleSize?: { rows: number; cols: number };
    noNewPrivileges: boolean;
    oomScoreAdj?: number;
    rlimits: { resource: number; soft: bigint; hard: bigint; type: string }[];
    capabilities?: CapabilityMasks;
  };
  hooks: {
    prestart: Hook[];
    createRuntime: Hook[];
    createContainer: Hook[];
    startContainer: Hook[];
    poststart: Hook[];
    poststop: Hook[];
  };
  /** Device cgroup rules: the spec's, then the defaults every container needs (as runc appends them). */
  deviceRules: LinuxDeviceCgroup[];
  /** Problems that are not errors (unknown capability names, …), to print as warnings. */
  warnings: string[];
}

/** Reads and parses `<bundle>/config.json`; InvalidArgument names the file and the problem. */
export function loadSpec(bundle: string): Spec {
  const path = join(bundle, "config.json");
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new InvalidArgument(`Invalid bundle ${bundle}: config.json does not exist`);
    }
    throw new InvalidArgument(
      `Invalid bundle ${bundle}: cannot read config.json: ${(err as Error).message}`,
    );
  }
  let spec: unknown;
  try {
    spec = JSON.parse(text);
  } catch (err) {
    throw new InvalidArgument(`Invalid bundle config ${path}: ${(err as Error).message}`);
  }
  if (typeof spec !== "object" || spec === null || Array.isArray(spec)) {
    throw new InvalidArgument(`Invalid bundle config ${path}: expected a JSON object`);
  }
  return spec as Spec;
}

function bad(field: string, why: string): never {
  throw new InvalidArgument(`Invalid ${field}: ${why}`);
}

function checkInt(value: unknown, field: string, min = 0, max = 0xffffffff): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    bad(field, `${JSON.stringify(value)} is not an integer in ${min}..${max}`);
  }
  return value;
}

/** RLIM_INFINITY, as the u64 Docker writes for an unlimited `--ulimit` (18446744073709551615). */
const RLIM_INFINITY = (1n << 64n) - 1n;

/** An rlimit value: an integer, or 2^64-1 for unlimited (which JSON.parse reads as 2^64). */
function rlimitValue(value: unknown, field: string): bigint {
  if (typeof value === "number" && value >= 2 ** 64 - 1 && value <= 2 ** 64) return RLIM_INFINITY;
  return BigInt(checkInt(value, field, 0, Number.MAX_SAFE_INTEGER));
}

function checkStringArray(value: unknown, field: string): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || value.some((v) => typeof v !== "string")) {
    bad(field, "expected an array of strings");
  }
  return value as string[];
}

// The devices every container may use (runc's AllowedDevices).
const DEFAULT_DEVICE_RULES: LinuxDeviceCgroup[] = [
  { allow: true, type: "c", major: null, minor: null, access: "m" },
  { allow: true, type: "b", major: null, minor: null, access: "m" },
  { allow: true, type: "c", major: 1, minor: 3, access: "rwm" },
  { allow: true, type: "c", major: 1, minor: 8, access: "rwm" },
  { allow: true, type: "c", major: 1, minor: 7, access: "rwm" },
  { allow: true, type: "c", major: 5, minor: 0, access: "rwm" },
  { allow: true, type: "c", major: 1, minor: 5, access: "rwm" },
  { allow: true, type: "c", major: 1, minor: 9, access: "rwm" },
  { allow: true, type: "c", major: 5, minor: 1, access: "rwm" },
  { allow: true, type: "c", major: 136, minor: null, access: "rwm" },
  { allow: true, type: "c", major: 5, minor: 2, access: "rwm" },
];

/** The device nodes runc creates in every container's /dev. */
export const DEFAULT_DEVICES: readonly Omit<PlannedDevice, "kind" | "uid" | "gid">[] = [
  { path: "/dev/null", major: 1, minor: 3, mode: 0o666 },
  { path: "/dev/zero", major: 1, minor: 5, mode: 0o666 },
  { path: "/dev/full", major: 1, minor: 7, mode: 0o666 },
  { path: "/dev/random", major: 1, minor: 8, mode: 0o666 },
  { path: "/dev/urandom", major: 1, minor: 9, mode: 0o666 },
  { path: "/dev/tty", major: 5, minor: 0, mode: 0o666 },
];

// sysctls a container may set, and the namespace each needs (runc's validator).
const IPC_SYSCTLS = new Set([
  "kernel.msgmax",
  "kernel.msgmnb",
  "kernel.msgmni",
  "kernel.sem",
  "kernel.shmall",
  "kernel.shmmax",
  "kernel.shmmni",
  "kernel.shm_rmid_forced",
]);

function planMount(m: Mount, i: number, bundle: string): PlannedMount {
  const field = `mounts[${i}]`;
  if (typeof m !== "object" || m === null) bad(field, "expected an object");
  if (typeof m.destination !== "string" || m.destination === "") {
    bad(`${field}.destination`, "missing");
  }
  const destination = isAbsolute(m.destination) ? m.destination : `/${m.destination}`;
  if (destination.split("/").includes("..")) {
    bad(`${field}.destination`, `${JSON.stringify(m.destination)} contains ".."`);
  }
  const options = checkStringArray(m.options, `${field}.options`);
  const parsed = parseMountOptions(options, destination);
  const type = m.type ?? (parsed.flags & 0x1000 ? "bind" : "");
  const bind = type === "bind" || (parsed.flags & 0x1000) !== 0;
  if (!bind && type === "") {
    bad(
      `${field}.type`,
      `mount on ${JSON.stringify(destination)} has neither a type nor a bind option`,
    );
  }
  if (m.uidMappings || m.gidMappings) {
    throw new NotImplemented(
      `Invalid ${field}: id-mapped mounts need user namespaces, which tug does not support yet`,
    );
  }
  if (parsed.extensions.includes("tmpcopyup") && (bind || type !== "tmpfs")) {
    bad(
      `${field}.options`,
      `"tmpcopyup" applies to tmpfs mounts only, and the mount on ${
        JSON.stringify(destination)
      } is of type ${JSON.stringify(bind ? "bind" : type)}`,
    );
  }
  let source = m.source ?? "";
  if (bind) {
    if (source === "") {
      bad(`${field}.source`, `bind mount on ${JSON.stringify(destination)} has no source`);
    }
    source = resolve(bundle, source);
  }
  return {
    destination,
    type,
    source,
    flags: parsed.flags | (bind ? 0x1000 : 0),
    cleared: parsed.cleared,
    propagation: parsed.propagation,
    data: parsed.data,
    bind,
    extensions: parsed.extensions,
  };
}

/**
 * Validates an OCI Process (config.json's `process`, or `exec --process`) and
 * resolves it: rlimit numbers, capability masks, umask, console size.
 */
export function planProcess(
  p: Process | undefined,
  field = "process",
): { process: InitPlan["process"]; warnings: string[] } {
  const warnings: string[] = [];
  if (!p || typeof p !== "object") bad(field, "missing");
  const args = checkStringArray(p.args, `${field}.args`);
  if (args.length === 0 || args[0] === "") bad(`${field}.args`, "must name the program to run");
  if (typeof p.cwd !== "string" || !p.cwd.startsWith("/")) {
    bad(`${field}.cwd`, `${JSON.stringify(p.cwd)} is not an absolute path`);
  }
  if (!p.user || typeof p.user !== "object") bad(`${field}.user`, "missing");
  const uid = checkInt(p.user.uid, `${field}.user.uid`);
  const gid = checkInt(p.user.gid, `${field}.user.gid`);
  const additionalGids = (p.user.additionalGids ?? []).map((g, i) =>
    checkInt(g, `${field}.user.additionalGids[${i}]`)
  );
  const env = checkStringArray(p.env, `${field}.env`);
  for (const e of env) {
    if (!e.includes("=")) bad(`${field}.env`, `${JSON.stringify(e)} is not NAME=value`);
  }
  const rlimits = (p.rlimits ?? []).map((r, i) => {
    const resource = RLIMITS[r.type];
    if (resource === undefined) {
      bad(`${field}.rlimits[${i}].type`, `unknown rlimit ${JSON.stringify(r.type)}`);
    }
    const soft = rlimitValue(r.soft, `${field}.rlimits[${i}].soft`);
    const hard = rlimitValue(r.hard, `${field}.rlimits[${i}].hard`);
    if (soft > hard) {
      bad(`${field}.rlimits[${i}]`, `soft limit ${soft} is above hard limit ${hard} for ${r.type}`);
    }
    return { resource, soft, hard, type: r.type };
  });
  if (p.oomScoreAdj !== undefined) checkInt(p.oomScoreAdj, `${field}.oomScoreAdj`, -1000, 1000);
  if (p.user.umask !== undefined) checkInt(p.user.umask, `${field}.user.umask`, 0, 0o777);
  if (p.apparmorProfile) {
    warnings.push(`ignoring ${field}.apparmorProfile: AppArmor is not supported`);
  }
  if (p.selinuxLabel) warnings.push(`ignoring ${field}.selinuxLabel: SELinux is not supported`);
  const process: InitPlan["process"] = {
    args,
    env,
    cwd: p.cwd,
    uid,
    gid,
    additionalGids,
    terminal: p.terminal === true,
    noNewPrivileges: p.noNewPrivileges === true,
    rlimits,
  };
  if (p.capabilities) {
    const { masks, unknown } = capabilityMasks(p.capabilities);
    process.capabilities = masks;
    if (unknown.length) warnings.push(`ignoring unknown capabilities: ${unknown.join(", ")}`);
  }
  if (p.user.umask !== undefined) process.umask = p.user.umask;
  if (p.consoleSize) {
    process.consoleSize = { rows: p.consoleSize.height, cols: p.consoleSize.width };
  }
  if (p.oomScoreAdj !== undefined) process.oomScoreAdj = p.oomScoreAdj;
  return { process, warnings };
}

/**
 * Validates `spec` (from the bundle at `bundle`) and resolves it into an InitPlan.
 * Throws InvalidArgument or NotImplemented naming the offending field.
 */
export function planContainer(spec: Spec, options: { id: string; bundle: string }): InitPlan {
  const { id, bundle } = options;
  const warnings: string[] = [];
  if (typeof spec.ociVersion !== "string") bad("ociVersion", "missing");
  if (!/^1\.\d+\.\d+/.test(spec.ociVersion)) {
    bad("ociVersion", `${JSON.stringify(spec.ociVersion)} is not a 1.x version`);
  }

  // root
  if (!spec.root || typeof spec.root.path !== "string" || spec.root.path === "") {
    bad("root.path", "missing");
  }
  const rootfs = resolve(bundle, spec.root.path);
  let rootStat: Deno.FileInfo;
  try {
    rootStat = Deno.statSync(rootfs);
  } catch {
    bad("root.path", `${rootfs} does not exist`);
  }
  if (!rootStat.isDirectory) bad("root.path", `${rootfs} is not a directory`);

  // process
  const { process, warnings: processWarnings } = planProcess(spec.process);
  warnings.push(...processWarnings);

  // namespaces
  const linux = spec.linux ?? {};
  const seen = new Set<string>();
  let unshareFlags = 0;
  const join: JoinNamespace[] = [];
  let newPid = false, newTime = false, newMount = false, newCgroupNs = false, newUts = false;
  let pidPath: string | undefined;
  let hasNet = false, hasIpc = false;
  for (const [i, ns] of (linux.namespaces ?? []).entries()) {
    const info = NAMESPACES[ns.type];
    if (!info) {
      bad(`linux.namespaces[${i}].type`, `unknown namespace type ${JSON.stringify(ns.type)}`);
    }
    if (seen.has(ns.type)) bad(`linux.namespaces[${i}]`, `namespace ${ns.type} is listed twice`);
    seen.add(ns.type);
    if (ns.type === "user") {
      throw new NotImplemented(
        "Invalid linux.namespaces: user namespaces are not supported yet (rootless mode comes later)",
      );
    }
    if (ns.path !== undefined && ns.path !== "") {
      if (!isAbsolute(ns.path)) {
        bad(`linux.namespaces[${i}].path`, `${JSON.stringify(ns.path)} is not absolute`);
      }
      try {
        Deno.statSync(ns.path);
      } catch {
        bad(`linux.namespaces[${i}].path`, `${ns.path} does not exist`);
      }
      if (ns.type === "pid") pidPath = ns.path;
      else join.push({ type: ns.type, flag: info.flag, path: ns.path });
    } else if (ns.type === "pid") newPid = true;
    else if (ns.type === "time") newTime = true;
    else unshareFlags |= info.flag;
    if (ns.type === "mount") newMount = ns.path === undefined || ns.path === "";
    if (ns.type === "cgroup") newCgroupNs = ns.path === undefined || ns.path === "";
    if (ns.type === "uts") newUts = true;
    if (ns.type === "network") hasNet = true;
    if (ns.type === "ipc") hasIpc = true;
  }
  if (!seen.has("mount")) bad("linux.namespaces", "a mount namespace is required");
  if (!newMount) {
    warnings.push(
      "the container joins an existing mount namespace: its mounts are not set up again",
    );
  }
  if (spec.hostname && !newUts) bad("hostname", "setting a hostname needs a new uts namespace");
  if (spec.domainname && !newUts) {
    bad("domainname", "setting a domainname needs a new uts namespace");
  }
  let timeOffsets: InitPlan["timeOffsets"];
  if (linux.timeOffsets) {
    if (!newTime) bad("linux.timeOffsets", "needs a new time namespace");
    timeOffsets = {};
    for (const [clock, off] of Object.entries(linux.timeOffsets)) {
      if (clock !== "monotonic" && clock !== "boottime") {
        bad("linux.timeOffsets", `unknown clock ${JSON.stringify(clock)}`);
      }
      timeOffsets[clock] = [off.secs ?? 0, off.nanosecs ?? 0];
    }
  }

  // sysctl
  const sysctl: [string, string][] = [];
  for (const [key, value] of Object.entries(linux.sysctl ?? {})) {
    if (!/^[a-z0-9_.\-/]+$/i.test(key) || key.includes("..")) {
      bad("linux.sysctl", `invalid key ${JSON.stringify(key)}`);
    }
    const ipc = IPC_SYSCTLS.has(key) || key.startsWith("fs.mqueue.");
    const net = key.startsWith("net.");
    const uts = key === "kernel.hostname" || key === "kernel.domainname";
    if (ipc && !hasIpc) bad("linux.sysctl", `${key} needs a new ipc namespace`);
    if (net && !hasNet) bad("linux.sysctl", `${key} needs a new network namespace`);
    if (uts && !newUts) bad("linux.sysctl", `${key} needs a new uts namespace`);
    if (!ipc && !net && !uts) {
      bad("linux.sysctl", `${key} is not namespaced and cannot be set for a container`);
    }
    sysctl.push([key, String(value)]);
  }

  // mounts
  if (spec.mounts !== undefined && !Array.isArray(spec.mounts)) bad("mounts", "expected an array");
  const mounts = (spec.mounts ?? []).map((m, i) => planMount(m, i, bundle));
  const setupDev = !mounts.some((m) => m.bind && m.destination === "/dev");

  // devices
  const devices: PlannedDevice[] = [];
  for (const [i, d] of (linux.devices ?? []).entries()) {
    const field = `linux.devices[${i}]`;
    if (
      typeof d.path !== "string" || !d.path.startsWith("/dev/") || d.path.split("/").includes("..")
    ) {
      bad(`${field}.path`, `${JSON.stringify(d.path)} is not under /dev`);
    }
    const kinds: Record<string, number> = { c: 0o020000, u: 0o020000, b: 0o060000, p: 0o010000 };
    const kind = kinds[d.type];
    if (kind === undefined) bad(`${field}.type`, `unknown device type ${JSON.stringify(d.type)}`);
    const needsNumbers = d.type !== "p";
    devices.push({
      path: d.path,
      kind,
      major: needsNumbers ? checkInt(d.major, `${field}.major`) : 0,
      minor: needsNumbers ? checkInt(d.minor, `${field}.minor`) : 0,
      mode: d.fileMode ?? 0o666,
      uid: d.uid ?? 0,
      gid: d.gid ?? 0,
    });
  }
  const deviceRules = [
    ...(linux.resources?.devices ?? []),
    ...DEFAULT_DEVICE_RULES,
    ...devices.filter((d) => d.kind !== 0o010000).map((d) => ({
      allow: true,
      type: d.kind === 0o060000 ? "b" : "c",
      major: d.major,
      minor: d.minor,
      access: "rwm",
    })),
  ];

  // propagation
  let rootPropagation = MS_SLAVE | MS_REC;
  if (linux.rootfsPropagation) {
    const flag = PROPAGATION[linux.rootfsPropagation];
    if (flag === undefined) {
      bad(
        "linux.rootfsPropagation",
        `unknown propagation ${JSON.stringify(linux.rootfsPropagation)}`,
      );
    }
    rootPropagation = flag;
  }

  // hooks
  const hooks: InitPlan["hooks"] = {
    prestart: [],
    createRuntime: [],
    createContainer: [],
    startContainer: [],
    poststart: [],
    poststop: [],
  };
  for (const kind of Object.keys(hooks) as (keyof InitPlan["hooks"])[]) {
    for (const [i, h] of (spec.hooks?.[kind] ?? []).entries()) {
      if (typeof h.path !== "string" || !isAbsolute(h.path)) {
        bad(`hooks.${kind}[${i}].path`, `${JSON.stringify(h.path)} is not an absolute path`);
      }
      if (h.timeout !== undefined && (!Number.isInteger(h.timeout) || h.timeout <= 0)) {
        bad(`hooks.${kind}[${i}].timeout`, "must be a positive number of seconds");
      }
      hooks[kind].push(h);
    }
  }

  if (linux.uidMappings?.length || linux.gidMappings?.length) {
    throw new NotImplemented("Invalid linux.uidMappings: user namespaces are not supported yet");
  }
  if (linux.intelRdt) warnings.push("ignoring linux.intelRdt: not supported");
  if (linux.personality) warnings.push("ignoring linux.personality: not supported");

  const plan: InitPlan = {
    id,
    bundle,
    rootfs,
    readonlyRoot: spec.root.readonly === true,
    rootPropagation,
    unshareFlags,
    join,
    newPid,
    newTime,
    newMount,
    newCgroupNs,
    mounts,
    setupDev,
    devices,
    sysctl,
    maskedPaths: checkStringArray(linux.maskedPaths, "linux.maskedPaths"),
    readonlyPaths: checkStringArray(linux.readonlyPaths, "linux.readonlyPaths"),
    process,
    hooks,
    deviceRules,
    warnings,
  };
  if (pidPath) plan.pidPath = pidPath;
  if (timeOffsets) plan.timeOffsets = timeOffsets;
  if (spec.hostname) plan.hostname = spec.hostname;
  if (spec.domainname) plan.domainname = spec.domainname;
  return plan;
}
