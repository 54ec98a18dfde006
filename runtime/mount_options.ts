/**
 * OCI mount options → mount(2) flags, propagation flags and the data string,
 * with the same vocabulary runc accepts.
 *
 * @module
 */

import {
  MS_BIND,
  MS_DIRSYNC,
  MS_LAZYTIME,
  MS_MANDLOCK,
  MS_NOATIME,
  MS_NODEV,
  MS_NODIRATIME,
  MS_NOEXEC,
  MS_NOSUID,
  MS_NOSYMFOLLOW,
  MS_PRIVATE,
  MS_RDONLY,
  MS_REC,
  MS_RELATIME,
  MS_REMOUNT,
  MS_SHARED,
  MS_SILENT,
  MS_SLAVE,
  MS_STRICTATIME,
  MS_SYNCHRONOUS,
  MS_UNBINDABLE,
} from "../ffi/constants.ts";
import { InvalidArgument } from "../errors.ts";

const MS_I_VERSION = 0x800000;

/** option → [clear the flag instead of setting it, flag]. */
const FLAGS: Readonly<Record<string, readonly [boolean, number]>> = {
  async: [true, MS_SYNCHRONOUS],
  atime: [true, MS_NOATIME],
  bind: [false, MS_BIND],
  defaults: [false, 0],
  dev: [true, MS_NODEV],
  diratime: [true, MS_NODIRATIME],
  dirsync: [false, MS_DIRSYNC],
  exec: [true, MS_NOEXEC],
  iversion: [false, MS_I_VERSION],
  lazytime: [false, MS_LAZYTIME],
  loud: [true, MS_SILENT],
  mand: [false, MS_MANDLOCK],
  noatime: [false, MS_NOATIME],
  nodev: [false, MS_NODEV],
  nodiratime: [false, MS_NODIRATIME],
  noexec: [false, MS_NOEXEC],
  noiversion: [true, MS_I_VERSION],
  nolazytime: [true, MS_LAZYTIME],
  nomand: [true, MS_MANDLOCK],
  norelatime: [true, MS_RELATIME],
  nostrictatime: [true, MS_STRICTATIME],
  nosuid: [false, MS_NOSUID],
  nosymfollow: [false, MS_NOSYMFOLLOW],
  rbind: [false, MS_BIND | MS_REC],
  relatime: [false, MS_RELATIME],
  remount: [false, MS_REMOUNT],
  ro: [false, MS_RDONLY],
  rw: [true, MS_RDONLY],
  silent: [false, MS_SILENT],
  strictatime: [false, MS_STRICTATIME],
  suid: [true, MS_NOSUID],
  sync: [false, MS_SYNCHRONOUS],
};

/** Propagation options → flags applied with a separate mount(2) call. */
export const PROPAGATION: Readonly<Record<string, number>> = {
  private: MS_PRIVATE,
  rprivate: MS_PRIVATE | MS_REC,
  shared: MS_SHARED,
  rshared: MS_SHARED | MS_REC,
  slave: MS_SLAVE,
  rslave: MS_SLAVE | MS_REC,
  unbindable: MS_UNBINDABLE,
  runbindable: MS_UNBINDABLE | MS_REC,
};

/** Options tug recognises but that need user namespaces or mount_setattr(2), which it does not do yet. */
const UNSUPPORTED = new Set([
  "idmap",
  "ridmap",
  "rro",
  "rrw",
  "rnosuid",
  "rsuid",
  "rnodev",
  "rdev",
  "rnoexec",
  "rexec",
  "rnodiratime",
  "rdiratime",
  "rrelatime",
  "rnorelatime",
  "rnoatime",
  "ratime",
  "rstrictatime",
  "rnostrictatime",
  "rnosymfollow",
  "rsymfollow",
]);

/** Options that only tell the runtime something and are not passed to the kernel. */
const EXTENSIONS = new Set(["tmpcopyup"]);

/** A mount's options, parsed. */
export interface ParsedMountOptions {
  /** Flags for the mount(2) call. */
  flags: number;
  /** Flags cleared by options such as `rw` (used when remounting). */
  cleared: number;
  /** Propagation flags, each applied with its own mount(2) call afterwards. */
  propagation: number[];
  /** Filesystem-specific options, comma-joined, e.g. `size=64m,mode=755`. */
  data: string;
  /** Runtime-only options present, e.g. `tmpcopyup`. */
  extensions: string[];
}

/** Parses a mount's `options`; an option tug cannot honour is an InvalidArgument naming it. */
export function parseMountOptions(
  options: readonly string[] = [],
  destination = "",
): ParsedMountOptions {
  let flags = 0;
  let cleared = 0;
  const propagation: number[] = [];
  const data: string[] = [];
  const extensions: string[] = [];
  for (const option of options) {
    const flag = FLAGS[option];
    if (flag) {
      const [clear, value] = flag;
      if (clear) {
        flags &= ~value;
        cleared |= value;
      } else {
        flags |= value;
        cleared &= ~value;
      }
    } else if (option in PROPAGATION) {
      propagation.push(PROPAGATION[option]!);
    } else if (EXTENSIONS.has(option)) {
      extensions.push(option);
    } else if (UNSUPPORTED.has(option)) {
      throw new InvalidArgument(
        `Unsupported mount option ${JSON.stringify(option)} for ${
          JSON.stringify(destination)
        }: tug does not implement recursive (mount_setattr) or id-mapped mount options yet`,
      );
    } else {
      data.push(option);
    }
  }
  return { flags, cleared, propagation, data: data.join(","), extensions };
}

/** Converts statfs(2) f_flags (ST_*) to the MS_* flags a bind remount must keep. */
export function statfsToMountFlags(st: number): number {
  let flags = 0;
  if (st & 0x1) flags |= MS_RDONLY;
  if (st & 0x2) flags |= MS_NOSUID;
  if (st & 0x4) flags |= MS_NODEV;
  if (st & 0x8) flags |= MS_NOEXEC;
  if (st & 0x10) flags |= MS_SYNCHRONOUS;
  if (st & 0x40) flags |= MS_MANDLOCK;
  if (st & 0x400) flags |= MS_NOATIME;
  if (st & 0x800) flags |= MS_NODIRATIME;
  if (st & 0x1000) flags |= MS_RELATIME;
  if (st & 0x2000) flags |= MS_NOSYMFOLLOW;
  return flags;
}
