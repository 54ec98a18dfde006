/**
 * The OCI spec of a container made from an image and `run`/`create` flags,
 * with the defaults containerd and nerdctl use: Docker's default capability
 * set, the usual mounts, masked and read-only paths, pid/ipc/uts/mount/cgroup
 * namespaces plus a network namespace unless `--net-host`, the image's
 * entrypoint, command, environment and working directory, and the default
 * seccomp profile unless `--privileged` or a profile is given.
 *
 * @module
 */

import { InvalidArgument } from "../../errors.ts";
import { CAPABILITIES } from "../../ffi/constants.ts";
import type { OciImageConfig } from "../../images/service.ts";
import { devMounts, maskedPaths, readonlyPaths } from "../../runtime/default_spec.ts";
import { defaultSeccompProfile } from "../../runtime/seccomp_default.ts";
import type { LinuxSeccomp, Mount, Spec } from "../../runtime/spec.ts";
import { OCI_VERSION } from "../../version.ts";

/** Docker's (and containerd's) default capabilities. */
export const DEFAULT_CAPABILITIES: readonly string[] = [
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_FSETID",
  "CAP_FOWNER",
  "CAP_MKNOD",
  "CAP_NET_RAW",
  "CAP_SETGID",
  "CAP_SETUID",
  "CAP_SETFCAP",
  "CAP_SETPCAP",
  "CAP_NET_BIND_SERVICE",
  "CAP_SYS_CHROOT",
  "CAP_KILL",
  "CAP_AUDIT_WRITE",
];

const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** A bind mount asked for with `--mount type=bind,src=…,dst=…,options=rbind:ro`. */
export interface MountOption {
  type: string;
  source: string;
  destination: string;
  options: string[];
}

/** What `run` and `containers create` let a user choose. */
export interface ContainerOptions {
  /** The command, replacing the image's Cmd (the Entrypoint stays). */
  args?: string[];
  env?: string[];
  cwd?: string;
  /** `user`, `uid`, `user:group` or `uid:gid` (resolved against the image's /etc/passwd when the task starts). */
  user?: string;
  hostname?: string;
  mounts?: MountOption[];
  netHost?: boolean;
  /** Bytes. */
  memoryLimit?: number;
  /** CPUs, e.g. 0.5. */
  cpus?: number;
  pidsLimit?: number;
  readOnly?: boolean;
  privileged?: boolean;
  capAdd?: string[];
  capDrop?: string[];
  /** A seccomp profile (OCI linux.seccomp JSON), or "unconfined". */
  seccompProfile?: LinuxSeccomp | "unconfined";
  terminal?: boolean;
  /** The terminal's size at start (with `terminal`), so the process never sees 0x0. */
  consoleSize?: { height: number; width: number };
}

/** A restart policy: `no`, `always`, `unless-stopped`, `on-failure[:N]`. */
export interface RestartPolicy {
  name: "no" | "always" | "unless-stopped" | "on-failure";
  maxRetries?: number;
}

/** Parses `--restart`. */
export function parseRestart(value: string): RestartPolicy {
  const m = /^(no|always|unless-stopped|on-failure)(?::(\d+))?$/.exec(value);
  if (!m || (m[2] !== undefined && m[1] !== "on-failure")) {
    throw new InvalidArgument(
      `Invalid --restart ${
        JSON.stringify(value)
      }: use no, always, unless-stopped or on-failure[:N]`,
    );
  }
  // on-failure:0 means no limit, as in Docker (it never restarted).
  return {
    name: m[1] as RestartPolicy["name"],
    ...(m[2] !== undefined && Number(m[2]) > 0 ? { maxRetries: Number(m[2]) } : {}),
  };
}

/** Parses `--mount type=bind,src=/a,dst=/b,options=rbind:ro` (also `source=`, `destination=`/`target=`, `readonly`). */
export function parseMountFlag(value: string): MountOption {
  const fields = new Map<string, string>();
  for (const part of value.split(",")) {
    const eq = part.indexOf("=");
    const key = (eq < 0 ? part : part.slice(0, eq)).trim().toLowerCase();
    fields.set(key, eq < 0 ? "true" : part.slice(eq + 1));
  }
  const type = fields.get("type") ?? "bind";
  const source = fields.get("src") ?? fields.get("source") ?? "";
  const destination = fields.get("dst") ?? fields.get("destination") ?? fields.get("target") ?? "";
  if (!destination.startsWith("/")) {
    throw new InvalidArgument(
      `Invalid --mount ${JSON.stringify(value)}: dst must be an absolute path`,
    );
  }
  if (type === "bind" && !source.startsWith("/")) {
    throw new InvalidArgument(
      `Invalid --mount ${JSON.stringify(value)}: src must be an absolute path`,
    );
  }
  const options = (fields.get("options") ?? "").split(":").filter(Boolean);
  if (type === "bind" && !options.some((o) => o === "bind" || o === "rbind")) {
    options.unshift("rbind");
  }
  if (fields.get("readonly") === "true" || fields.get("ro") === "true") options.push("ro");
  return { type, source, destination, options };
}

function capName(c: string): string {
  const up = c.toUpperCase();
  return up === "ALL" ? up : up.startsWith("CAP_") ? up : `CAP_${up}`;
}

/** The capability set after `--cap-add` and `--cap-drop` (either may be "ALL"). */
export function capabilities(
  options: Pick<ContainerOptions, "capAdd" | "capDrop" | "privileged">,
): string[] {
  if (options.privileged) return [...CAPABILITIES];
  const add = (options.capAdd ?? []).map(capName);
  const drop = (options.capDrop ?? []).map(capName);
  for (const c of [...add, ...drop]) {
    if (c !== "ALL" && !CAPABILITIES.includes(c)) {
      throw new InvalidArgument(`Unknown capability ${JSON.stringify(c)}`);
    }
  }
  let caps = drop.includes("ALL") ? [] : DEFAULT_CAPABILITIES.filter((c) => !drop.includes(c));
  caps = add.includes("ALL") ? [...CAPABILITIES] : [...new Set([...caps, ...add])];
  return caps.filter((c) => !drop.includes(c) || add.includes(c));
}

/** Merges NAME=value lists; later ones win, order of first appearance is kept. */
function mergeEnv(...lists: (readonly string[] | undefined)[]): string[] {
  const env = new Map<string, string>();
  for (const list of lists) {
    for (const e of list ?? []) {
      const eq = e.indexOf("=");
      if (eq <= 0) {
        throw new InvalidArgument(
          `Invalid environment variable ${JSON.stringify(e)}: use NAME=value`,
        );
      }
      env.set(e.slice(0, eq), e);
    }
  }
  return [...env.values()];
}

/**
 * The spec for container `id` in `namespace` from its image config and the
 * user's options. The rootfs path and the image user are filled in by the shim.
 */
export function buildSpec(
  image: OciImageConfig,
  options: ContainerOptions & {
    id: string;
    namespace: string;
    cgroupParent: string;
    seccompDefault: boolean;
  },
): { spec: Spec; user: string } {
  const config = image.config ?? {};
  const entrypoint = config.Entrypoint ?? [];
  const cmd = options.args?.length ? options.args : (config.Cmd ?? []);
  const args = [...entrypoint, ...cmd];
  if (args.length === 0) {
    throw new InvalidArgument("The image has no command to run: give one after the container id");
  }
  const caps = capabilities(options);
  const env = mergeEnv(
    [`PATH=${DEFAULT_PATH}`],
    config.Env,
    options.terminal ? ["TERM=xterm"] : [],
    options.env,
  );
  const privileged = options.privileged === true;

  const mounts: Mount[] = [
    { destination: "/proc", type: "proc", source: "proc", options: ["nosuid", "noexec", "nodev"] },
    ...devMounts(),
    {
      destination: "/sys",
      type: "sysfs",
      source: "sysfs",
      options: ["nosuid", "noexec", "nodev", privileged ? "rw" : "ro"],
    },
    {
      destination: "/sys/fs/cgroup",
      type: "cgroup",
      source: "cgroup",
      options: ["nosuid", "noexec", "nodev", "relatime", privileged ? "rw" : "ro"],
    },
  ];
  if (options.netHost) {
    for (const f of ["/etc/resolv.conf", "/etc/hosts"]) {
      try {
        Deno.statSync(f);
        mounts.push({ destination: f, type: "bind", source: f, options: ["rbind", "ro"] });
      } catch {
        // the host has none
      }
    }
  }
  for (const m of options.mounts ?? []) {
    mounts.push({ destination: m.destination, type: m.type, source: m.source, options: m.options });
  }

  const namespaces = [
    "pid",
    "ipc",
    "uts",
    "mount",
    "cgroup",
    ...(options.netHost ? [] : ["network"]),
  ].map((type) => ({ type }));
  const resources: NonNullable<NonNullable<Spec["linux"]>["resources"]> = {
    devices: [{ allow: privileged, access: "rwm" }],
  };
  if (options.memoryLimit !== undefined) {
    if (!(options.memoryLimit > 0)) {
      throw new InvalidArgument(`Invalid --memory-limit ${options.memoryLimit}: must be positive`);
    }
    resources.memory = { limit: options.memoryLimit };
  }
  if (options.cpus !== undefined) {
    if (!(options.cpus > 0)) {
      throw new InvalidArgument(`Invalid --cpus ${options.cpus}: must be positive`);
    }
    resources.cpu = { quota: Math.round(options.cpus * 100_000), period: 100_000 };
  }
  if (options.pidsLimit !== undefined) {
    if (!Number.isInteger(options.pidsLimit) || options.pidsLimit < 1) {
      throw new InvalidArgument(
        `Invalid --pids-limit ${options.pidsLimit}: must be a positive integer`,
      );
    }
    resources.pids = { limit: options.pidsLimit };
  }

  const spec: Spec = {
    ociVersion: OCI_VERSION,
    process: {
      terminal: options.terminal === true,
      ...(options.terminal && options.consoleSize ? { consoleSize: options.consoleSize } : {}),
      user: { uid: 0, gid: 0 },
      args,
      env,
      cwd: options.cwd ?? (config.WorkingDir || "/"),
      capabilities: { bounding: caps, effective: caps, permitted: caps },
      rlimits: [{ type: "RLIMIT_NOFILE", hard: 1024, soft: 1024 }],
      noNewPrivileges: false,
    },
    root: { path: "rootfs", readonly: options.readOnly === true },
    hostname: options.hostname ?? options.id.slice(0, 63),
    mounts,
    linux: {
      namespaces,
      resources,
      cgroupsPath: `${options.cgroupParent.replace(/\/+$/, "")}/${options.namespace}/${options.id}`,
      ...(privileged ? {} : {
        maskedPaths: [...maskedPaths(), "/sys/devices/virtual/powercap"],
        readonlyPaths: readonlyPaths(),
      }),
    },
    annotations: { "io.tug.namespace": options.namespace },
  };
  if (!privileged && options.seccompProfile !== "unconfined") {
    if (options.seccompProfile) spec.linux!.seccomp = options.seccompProfile;
    else if (options.seccompDefault) {
      spec.linux!.seccomp = defaultSeccompProfile({ capabilities: caps });
    }
  }
  return { spec, user: options.user ?? (config.User || "0") };
}
