/**
 * Device access rules (`linux.resources.devices`) for both cgroup versions.
 *
 * - cgroup v1 has the devices controller: tug writes `a` to devices.deny,
 *   then each rule to devices.allow or devices.deny, in order.
 * - cgroup v2 has no devices controller: access is decided by an eBPF
 *   program of type BPF_PROG_TYPE_CGROUP_DEVICE attached to the cgroup, as
 *   runc and crun do. {@link emulateDeviceRules} folds the rule list into
 *   what v1 would end up with (a default plus exceptions, all of the other
 *   action), {@link deviceFilterProgram} compiles that into eBPF
 *   instructions, and {@link attachDeviceFilter} loads it and attaches it,
 *   replacing the programs attached before.
 *
 * @module
 */

import { FailedPrecondition, Internal, InvalidArgument } from "../../errors.ts";
import {
  BPF_ATTR_SIZE,
  BPF_CGROUP_DEVICE,
  BPF_F_ALLOW_MULTI,
  BPF_PROG_ATTACH,
  BPF_PROG_DETACH,
  BPF_PROG_GET_FD_BY_ID,
  BPF_PROG_LOAD,
  BPF_PROG_QUERY,
  BPF_PROG_TYPE_CGROUP_DEVICE,
  O_CLOEXEC,
  O_DIRECTORY,
  O_RDONLY,
} from "../../ffi/constants.ts";
import type { Syscall } from "../../ffi/syscall.ts";
import type { LinuxDeviceCgroup } from "../spec.ts";
import { errnoOf } from "./_common.ts";

/** One device rule with its defaults filled in. */
export interface DeviceRule {
  allow: boolean;
  /** "a" (all), "b" (block) or "c" (character). */
  type: "a" | "b" | "c";
  /** null matches every major (the `*` of the v1 syntax). */
  major: number | null;
  /** null matches every minor. */
  minor: number | null;
  /** Some of "r", "w", "m", in that order. */
  access: string;
}

/** Checks OCI device rules and fills in their defaults (type "a", any major/minor, access "rwm"). */
export function normalizeDeviceRules(rules: readonly LinuxDeviceCgroup[]): DeviceRule[] {
  if (!Array.isArray(rules)) {
    throw new InvalidArgument(`Invalid resources.devices: ${JSON.stringify(rules)} is not a list`);
  }
  return rules.map((rule, i) => {
    const bad = (what: string): never => {
      throw new InvalidArgument(`Invalid resources.devices[${i}]: ${JSON.stringify(rule)} ${what}`);
    };
    if (typeof rule !== "object" || rule === null) bad("is not an object");
    if (typeof rule.allow !== "boolean") bad('has no boolean "allow"');
    const type = rule.type ?? "a";
    if (type !== "a" && type !== "b" && type !== "c") bad('has a type other than "a", "b" or "c"');
    const number = (v: number | null | undefined, name: string): number | null => {
      if (v === undefined || v === null || v === -1) return null;
      if (!Number.isInteger(v) || v < 0 || v > 0x7fffffff) bad(`has a bad ${name}`);
      return v;
    };
    const access = rule.access ?? "rwm";
    if (
      typeof access !== "string" || !/^[rwm]{1,3}$/.test(access) ||
      new Set(access).size !== access.length
    ) {
      bad('has an access other than some of "r", "w", "m"');
    }
    return {
      allow: rule.allow,
      type: type as DeviceRule["type"],
      major: number(rule.major, "major"),
      minor: number(rule.minor, "minor"),
      access: ["r", "w", "m"].filter((c) => access.includes(c)).join(""),
    };
  });
}

/** A rule in the v1 devices.allow / devices.deny syntax: `c 1:3 rwm`, `a *:* rwm`. */
export function v1DeviceRuleText(rule: DeviceRule): string {
  if (rule.type === "a") return "a *:* rwm";
  return `${rule.type} ${rule.major ?? "*"}:${rule.minor ?? "*"} ${rule.access}`;
}

/** What a list of rules amounts to: a default, and exceptions that all do the opposite. */
export interface DeviceRuleSet {
  /** True when devices not named by an exception are allowed. */
  defaultAllow: boolean;
  /** Exceptions to the default; each one's `allow` is `!defaultAllow`. */
  exceptions: DeviceRule[];
}

/**
 * Folds `rules` (applied in order to a cgroup that starts by denying
 * everything) into the default and exceptions cgroup v1 would keep. Like
 * runc, refuses to remove access from a single device that a wildcard
 * exception grants (v1 silently ignores that, which would leave the device
 * open).
 */
export function emulateDeviceRules(rules: readonly DeviceRule[]): DeviceRuleSet {
  let defaultAllow = false;
  const exceptions = new Map<string, DeviceRule>();
  const key = (t: string, major: number | null, minor: number | null) =>
    `${t} ${major ?? "*"}:${minor ?? "*"}`;
  rules.forEach((rule, i) => {
    if (rule.type === "a") {
      defaultAllow = rule.allow;
      exceptions.clear();
      return;
    }
    const k = key(rule.type, rule.major, rule.minor);
    if (rule.allow !== defaultAllow) {
      const existing = exceptions.get(k);
      const access = (existing?.access ?? "") + rule.access;
      exceptions.set(k, {
        ...rule,
        access: ["r", "w", "m"].filter((c) => access.includes(c)).join(""),
      });
      return;
    }
    // The rule agrees with the default: it takes access away from an exception.
    for (const [major, minor] of [[null, rule.minor], [rule.major, null], [null, null]] as const) {
      const wider = key(rule.type, major, minor);
      if (wider === k) continue;
      const w = exceptions.get(wider);
      if (w && [...rule.access].some((c) => w.access.includes(c))) {
        throw new InvalidArgument(
          `Invalid resources.devices[${i}]: "${
            v1DeviceRuleText(rule)
          }" cannot take access away from one device that the wider rule "${
            v1DeviceRuleText(w)
          }" grants`,
        );
      }
    }
    const existing = exceptions.get(k);
    if (!existing) return;
    const access = [...existing.access].filter((c) => !rule.access.includes(c)).join("");
    if (access) exceptions.set(k, { ...existing, access });
    else exceptions.delete(k);
  });
  return { defaultAllow, exceptions: [...exceptions.values()] };
}

// struct bpf_cgroup_dev_ctx { u32 access_type /* access << 16 | type */; u32 major; u32 minor; }
const DEV_BLOCK = 1, DEV_CHAR = 2;
const ACC_MKNOD = 1, ACC_READ = 2, ACC_WRITE = 4;
const R0 = 0, R1 = 1, R2 = 2, R3 = 3, R4 = 4, R5 = 5;
// Opcodes (class | op | source).
const LDX_MEM_W = 0x61;
const ALU32_AND_K = 0x54;
const ALU32_RSH_K = 0x74;
const ALU32_MOV_K = 0xb4;
const ALU32_MOV_X = 0xbc;
const JMP_JEQ_K = 0x15;
const JMP_JNE_K = 0x55;
const JMP_JNE_X = 0x5d;
const JMP_EXIT = 0x95;

interface Insn {
  op: number;
  dst: number;
  src: number;
  off: number;
  imm: number;
  /** For jumps to the next block: resolved into `off` at the end. */
  toNext?: boolean;
}

function accessBits(access: string): number {
  return (access.includes("r") ? ACC_READ : 0) | (access.includes("w") ? ACC_WRITE : 0) |
    (access.includes("m") ? ACC_MKNOD : 0);
}

/**
 * Compiles a rule set into a BPF_PROG_TYPE_CGROUP_DEVICE program (8-byte
 * instructions, little-endian as the kernel expects on x86_64 and aarch64).
 * Each exception is one block that returns `!defaultAllow` when the device
 * matches; the program ends by returning `defaultAllow`. An allow exception
 * matches when every requested access is in it; a deny exception matches
 * when any requested access is in it.
 */
export function deviceFilterProgram(set: DeviceRuleSet): Uint8Array {
  const insns: Insn[] = [
    { op: LDX_MEM_W, dst: R2, src: R1, off: 0, imm: 0 },
    { op: ALU32_AND_K, dst: R2, src: 0, off: 0, imm: 0xffff }, // R2 = device type
    { op: LDX_MEM_W, dst: R3, src: R1, off: 0, imm: 0 },
    { op: ALU32_RSH_K, dst: R3, src: 0, off: 0, imm: 16 }, // R3 = requested access
    { op: LDX_MEM_W, dst: R4, src: R1, off: 4, imm: 0 }, // R4 = major
    { op: LDX_MEM_W, dst: R5, src: R1, off: 8, imm: 0 }, // R5 = minor
  ];
  const jumpToNext = (op: number, dst: number, src: number, imm: number): Insn => ({
    op,
    dst,
    src,
    off: 0,
    imm,
    toNext: true,
  });
  for (const rule of set.exceptions) {
    if (rule.type === "a" || rule.allow === set.defaultAllow) {
      throw new Internal(`Compile device filter: unexpected exception ${v1DeviceRuleText(rule)}`);
    }
    const block: Insn[] = [jumpToNext(JMP_JNE_K, R2, 0, rule.type === "b" ? DEV_BLOCK : DEV_CHAR)];
    const bits = accessBits(rule.access);
    if (bits !== (ACC_READ | ACC_WRITE | ACC_MKNOD)) {
      block.push({ op: ALU32_MOV_X, dst: R1, src: R3, off: 0, imm: 0 });
      block.push({ op: ALU32_AND_K, dst: R1, src: 0, off: 0, imm: bits });
      block.push(rule.allow ? jumpToNext(JMP_JNE_X, R1, R3, 0) : jumpToNext(JMP_JEQ_K, R1, 0, 0));
    }
    if (rule.major !== null) block.push(jumpToNext(JMP_JNE_K, R4, 0, rule.major));
    if (rule.minor !== null) block.push(jumpToNext(JMP_JNE_K, R5, 0, rule.minor));
    block.push({ op: ALU32_MOV_K, dst: R0, src: 0, off: 0, imm: rule.allow ? 1 : 0 });
    block.push({ op: JMP_EXIT, dst: 0, src: 0, off: 0, imm: 0 });
    const start = insns.length;
    block.forEach((insn, j) => {
      if (insn.toNext) insn.off = block.length - j - 1;
      insns[start + j] = insn;
    });
  }
  insns.push({ op: ALU32_MOV_K, dst: R0, src: 0, off: 0, imm: set.defaultAllow ? 1 : 0 });
  insns.push({ op: JMP_EXIT, dst: 0, src: 0, off: 0, imm: 0 });
  const bytes = new Uint8Array(insns.length * 8);
  const view = new DataView(bytes.buffer);
  insns.forEach((insn, i) => {
    view.setUint8(i * 8, insn.op);
    view.setUint8(i * 8 + 1, (insn.src << 4) | insn.dst);
    view.setInt16(i * 8 + 2, insn.off, true);
    view.setInt32(i * 8 + 4, insn.imm, true);
  });
  return bytes;
}

const encoder = new TextEncoder();

function address(buf: Uint8Array): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf)));
}

function bpfError(what: string, dir: string, err: unknown, detail = ""): Error {
  const errno = errnoOf(err) ?? String(err);
  const message = `Set resources.devices: ${what} for cgroup ${dir}: ${errno}${detail}`;
  if (errno === "EPERM" || errno === "ENOSYS" || errno === "EOPNOTSUPP") {
    return new FailedPrecondition(
      `${message} (the kernel refuses eBPF device filters to this process)`,
      {
        cause: err,
      },
    );
  }
  return new Internal(message, { cause: err });
}

function loadProgram(sys: Syscall, program: Uint8Array, dir: string): number {
  const license = encoder.encode("Apache\0");
  const attr = new Uint8Array(BPF_ATTR_SIZE);
  const v = new DataView(attr.buffer);
  v.setUint32(0, BPF_PROG_TYPE_CGROUP_DEVICE, true);
  v.setUint32(4, program.length / 8, true);
  v.setBigUint64(8, address(program), true);
  v.setBigUint64(16, address(license), true);
  try {
    return sys.bpf(BPF_PROG_LOAD, attr);
  } catch (err) {
    if (errnoOf(err) !== "EINVAL" && errnoOf(err) !== "EACCES") {
      throw bpfError("load the eBPF device filter", dir, err);
    }
    // Load again with the verifier's log, for the error message.
    const log = new Uint8Array(65536);
    v.setUint32(24, 1, true);
    v.setUint32(28, log.length, true);
    v.setBigUint64(32, address(log), true);
    try {
      return sys.bpf(BPF_PROG_LOAD, attr);
    } catch (again) {
      const text = new TextDecoder().decode(log.subarray(0, Math.max(0, log.indexOf(0)))).trim();
      throw bpfError("load the eBPF device filter", dir, again, text ? `: ${text}` : "");
    }
  }
}

/** Ids of the device programs attached directly to the cgroup open as `cgroupFd`. */
function attachedPrograms(sys: Syscall, cgroupFd: number, dir: string): number[] {
  const ids = new Uint32Array(64);
  const idBytes = new Uint8Array(ids.buffer);
  const attr = new Uint8Array(BPF_ATTR_SIZE);
  const v = new DataView(attr.buffer);
  v.setUint32(0, cgroupFd, true);
  v.setUint32(4, BPF_CGROUP_DEVICE, true);
  v.setBigUint64(16, address(idBytes), true);
  v.setUint32(24, ids.length, true);
  try {
    sys.bpf(BPF_PROG_QUERY, attr);
  } catch (err) {
    throw bpfError("list the attached device filters", dir, err);
  }
  // Program ids start at 1: zeros are slots the kernel did not fill.
  return [...ids.subarray(0, Math.min(v.getUint32(24, true), ids.length))].filter((id) => id !== 0);
}

function attachOrDetach(
  sys: Syscall,
  cmd: number,
  cgroupFd: number,
  programFd: number,
  flags: number,
): void {
  const attr = new Uint8Array(BPF_ATTR_SIZE);
  const v = new DataView(attr.buffer);
  v.setUint32(0, cgroupFd, true);
  v.setUint32(4, programFd, true);
  v.setUint32(8, BPF_CGROUP_DEVICE, true);
  v.setUint32(12, flags, true);
  sys.bpf(cmd, attr);
}

/** Options for {@link attachDeviceFilter}. */
export interface AttachOptions {
  /** The system-call layer. */
  sys: Syscall;
}

/**
 * Loads `program` and attaches it to the cgroup v2 directory `dir`
 * (BPF_F_ALLOW_MULTI), then detaches the device programs that were attached
 * to `dir` before, so that exactly one filter, the new one, applies. The
 * attachment keeps the program alive; tug keeps no fd open.
 */
export function attachDeviceFilter(dir: string, program: Uint8Array, options: AttachOptions): void {
  const { sys } = options;
  const cgroupFd = sys.open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  try {
    const before = attachedPrograms(sys, cgroupFd, dir);
    const programFd = loadProgram(sys, program, dir);
    try {
      attachOrDetach(sys, BPF_PROG_ATTACH, cgroupFd, programFd, BPF_F_ALLOW_MULTI);
    } catch (err) {
      throw bpfError("attach the eBPF device filter", dir, err);
    } finally {
      sys.close(programFd);
    }
    for (const id of before) {
      const attr = new Uint8Array(BPF_ATTR_SIZE);
      new DataView(attr.buffer).setUint32(0, id, true);
      let oldFd: number;
      try {
        oldFd = sys.bpf(BPF_PROG_GET_FD_BY_ID, attr);
      } catch (err) {
        if (errnoOf(err) === "ENOENT") continue; // detached meanwhile
        throw bpfError(`open the old device filter ${id}`, dir, err);
      }
      try {
        attachOrDetach(sys, BPF_PROG_DETACH, cgroupFd, oldFd, 0);
      } catch (err) {
        if (errnoOf(err) !== "ENOENT") {
          throw bpfError(`detach the old device filter ${id}`, dir, err);
        }
      } finally {
        sys.close(oldFd);
      }
    }
  } finally {
    sys.close(cgroupFd);
  }
}
