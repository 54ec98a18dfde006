/**
 * The config.json `tug runtime spec` writes: the same defaults as `runc spec`
 * (a shell with a terminal, a read-only rootfs, the usual mounts, masked and
 * read-only paths, and a small capability set).
 *
 * @module
 */

import type { Mount, Spec } from "./spec.ts";
import { OCI_VERSION } from "../version.ts";

const DEFAULT_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

/** The paths masked in a container by default (`runc spec`'s list; containerd's adds powercap). */
export function maskedPaths(): string[] {
  return [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
  ];
}

/** The paths made read-only in a container by default (runc's and containerd's lists alike). */
export function readonlyPaths(): string[] {
  return ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];
}

/** The mounts under /dev every container gets (runc's and containerd's defaults alike). */
export function devMounts(): Mount[] {
  return [
    {
      destination: "/dev",
      type: "tmpfs",
      source: "tmpfs",
      options: ["nosuid", "strictatime", "mode=755", "size=65536k"],
    },
    {
      destination: "/dev/pts",
      type: "devpts",
      source: "devpts",
      options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
    },
    {
      destination: "/dev/shm",
      type: "tmpfs",
      source: "shm",
      options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
    },
    {
      destination: "/dev/mqueue",
      type: "mqueue",
      source: "mqueue",
      options: ["nosuid", "noexec", "nodev"],
    },
  ];
}

/** A default Spec; `args` replaces the default `["sh"]`. */
export function defaultSpec(options: { args?: string[]; terminal?: boolean } = {}): Spec {
  return {
    ociVersion: OCI_VERSION,
    process: {
      terminal: options.terminal ?? true,
      user: { uid: 0, gid: 0 },
      args: options.args ?? ["sh"],
      env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
      cwd: "/",
      capabilities: {
        bounding: [...DEFAULT_CAPS],
        effective: [...DEFAULT_CAPS],
        permitted: [...DEFAULT_CAPS],
        ambient: [...DEFAULT_CAPS],
      },
      rlimits: [{ type: "RLIMIT_NOFILE", hard: 1024, soft: 1024 }],
      noNewPrivileges: true,
    },
    root: { path: "rootfs", readonly: true },
    hostname: "tug",
    mounts: [
      { destination: "/proc", type: "proc", source: "proc" },
      ...devMounts(),
      {
        destination: "/sys",
        type: "sysfs",
        source: "sysfs",
        options: ["nosuid", "noexec", "nodev", "ro"],
      },
      {
        destination: "/sys/fs/cgroup",
        type: "cgroup",
        source: "cgroup",
        options: ["nosuid", "noexec", "nodev", "relatime", "ro"],
      },
    ],
    linux: {
      resources: { devices: [{ allow: false, access: "rwm" }] },
      namespaces: [{ type: "pid" }, { type: "network" }, { type: "ipc" }, { type: "uts" }, {
        type: "mount",
      }, { type: "cgroup" }],
      maskedPaths: maskedPaths(),
      readonlyPaths: readonlyPaths(),
    },
  };
}
