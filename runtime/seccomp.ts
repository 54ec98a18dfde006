/**
 * OCI `linux.seccomp` → an installed seccomp filter.
 *
 * Like crun, tug compiles the filter in the runtime's parent process, before
 * the container process exists: {@link compileSeccomp} builds the libseccomp
 * context (default action, architectures, every rule), exports the BPF
 * program, prepends runc's "-ENOSYS for syscalls newer than the profile" stub
 * and frees the context. The forked child then calls
 * {@link SeccompFilter.load}, which is one `seccomp(2)` call on a program that
 * is already in memory: no libseccomp work, no native allocation, no async
 * code.
 *
 * Semantics follow runc and crun:
 * - a rule whose action equals the default action is skipped (libseccomp
 *   refuses it);
 * - several conditions on the same argument index cannot share one libseccomp
 *   rule, so they become one rule per condition (runc's and crun's fallback:
 *   the conditions are then OR-ed, not AND-ed);
 * - a syscall name libseccomp does not know at all is an error (or ignored
 *   with `unknownSyscalls: "ignore"`); a name that exists but on none of the
 *   filter's architectures is skipped, since profiles cover many arches;
 * - libseccomp's automatic no_new_privs is off: the runtime sets
 *   no_new_privs itself when `process.noNewPrivileges` is true. Without it,
 *   loading needs CAP_SYS_ADMIN, so load before dropping capabilities.
 *
 * @module
 */

import { Internal, InvalidArgument } from "../errors.ts";
import {
  AUDIT_ARCH_S390,
  AUDIT_ARCH_S390X,
  AUDIT_ARCH_X86_64,
  SECCOMP_FILTER_FLAG_LOG,
  SECCOMP_FILTER_FLAG_NEW_LISTENER,
  SECCOMP_FILTER_FLAG_SPEC_ALLOW,
  SECCOMP_FILTER_FLAG_TSYNC,
  SECCOMP_FILTER_FLAG_TSYNC_ESRCH,
  SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
  X32_SYSCALL_BIT,
} from "../ffi/constants.ts";
import {
  BPF_INSN_SIZE,
  type BpfProgram,
  bpfProgram,
  type Libseccomp,
  libseccomp,
  NR_SCMP_ERROR,
  SCMP_ACT_ALLOW,
  SCMP_ACT_KILL_PROCESS,
  SCMP_ACT_KILL_THREAD,
  SCMP_ACT_LOG,
  SCMP_ACT_NOTIFY,
  SCMP_ACT_TRAP,
  SCMP_CMP_EQ,
  SCMP_CMP_GE,
  SCMP_CMP_GT,
  SCMP_CMP_LE,
  SCMP_CMP_LT,
  SCMP_CMP_MASKED_EQ,
  SCMP_CMP_NE,
  SCMP_FLTATR_CTL_NNP,
  SCMP_FLTATR_CTL_OPTIMIZE,
  scmpActErrno,
  scmpActTrace,
  type ScmpArgCmp,
  type SeccompContext,
  seccompSetModeFilter,
} from "../ffi/seccomp.ts";
import { SyscallError } from "../ffi/syscall.ts";
import type { LinuxSeccomp, LinuxSeccompArg } from "./spec.ts";

/** A compiled filter, ready to be installed in the container's process. */
export interface SeccompFilter {
  /**
   * Installs the filter on the calling thread (synchronously; meant for the
   * forked child right before execve). Returns the listener fd when a rule
   * uses SCMP_ACT_NOTIFY, else undefined. Throws a SyscallError naming
   * `seccomp` and the errno (EACCES: neither no_new_privs nor CAP_SYS_ADMIN).
   */
  load(): number | undefined;
  /** Drops the compiled program; {@link load} throws afterwards. */
  release(): void;
}

/** Options for {@link compileSeccomp}. */
export interface CompileSeccompOptions {
  /**
   * Build the filter for this architecture (an OCI name such as
   * `SCMP_ARCH_AARCH64`) instead of the machine's own. Such a filter can be
   * inspected but not loaded here.
   */
  arch?: string;
  /**
   * What to do with a syscall name libseccomp does not know at all:
   * `"error"` (default) throws InvalidArgument, `"ignore"` skips it as runc
   * and crun do (useful for profiles written for a newer libseccomp).
   */
  unknownSyscalls?: "error" | "ignore";
}

/** Actions by OCI name. ERRNO and TRACE carry errnoRet and are built by {@link actionValue}. */
const ACTIONS: Readonly<Record<string, number | "errno" | "trace">> = {
  SCMP_ACT_KILL: SCMP_ACT_KILL_THREAD,
  SCMP_ACT_KILL_THREAD: SCMP_ACT_KILL_THREAD,
  SCMP_ACT_KILL_PROCESS: SCMP_ACT_KILL_PROCESS,
  SCMP_ACT_TRAP: SCMP_ACT_TRAP,
  SCMP_ACT_ERRNO: "errno",
  SCMP_ACT_TRACE: "trace",
  SCMP_ACT_ALLOW: SCMP_ACT_ALLOW,
  SCMP_ACT_LOG: SCMP_ACT_LOG,
  SCMP_ACT_NOTIFY: SCMP_ACT_NOTIFY,
};

const OPERATORS: Readonly<Record<string, number>> = {
  SCMP_CMP_NE: SCMP_CMP_NE,
  SCMP_CMP_LT: SCMP_CMP_LT,
  SCMP_CMP_LE: SCMP_CMP_LE,
  SCMP_CMP_EQ: SCMP_CMP_EQ,
  SCMP_CMP_GE: SCMP_CMP_GE,
  SCMP_CMP_GT: SCMP_CMP_GT,
  SCMP_CMP_MASKED_EQ: SCMP_CMP_MASKED_EQ,
};

/** OCI architecture names and libseccomp's names for them. */
const ARCHITECTURES: Readonly<Record<string, string>> = {
  SCMP_ARCH_X86: "x86",
  SCMP_ARCH_X86_64: "x86_64",
  SCMP_ARCH_X32: "x32",
  SCMP_ARCH_ARM: "arm",
  SCMP_ARCH_AARCH64: "aarch64",
  SCMP_ARCH_MIPS: "mips",
  SCMP_ARCH_MIPS64: "mips64",
  SCMP_ARCH_MIPS64N32: "mips64n32",
  SCMP_ARCH_MIPSEL: "mipsel",
  SCMP_ARCH_MIPSEL64: "mipsel64",
  SCMP_ARCH_MIPSEL64N32: "mipsel64n32",
  SCMP_ARCH_PPC: "ppc",
  SCMP_ARCH_PPC64: "ppc64",
  SCMP_ARCH_PPC64LE: "ppc64le",
  SCMP_ARCH_S390: "s390",
  SCMP_ARCH_S390X: "s390x",
  SCMP_ARCH_PARISC: "parisc",
  SCMP_ARCH_PARISC64: "parisc64",
  SCMP_ARCH_RISCV64: "riscv64",
  SCMP_ARCH_LOONGARCH64: "loongarch64",
  SCMP_ARCH_M68K: "m68k",
  SCMP_ARCH_SH: "sh",
  SCMP_ARCH_SHEB: "sheb",
};

const FLAGS: Readonly<Record<string, number>> = {
  SECCOMP_FILTER_FLAG_TSYNC: SECCOMP_FILTER_FLAG_TSYNC,
  SECCOMP_FILTER_FLAG_LOG: SECCOMP_FILTER_FLAG_LOG,
  SECCOMP_FILTER_FLAG_SPEC_ALLOW: SECCOMP_FILTER_FLAG_SPEC_ALLOW,
  SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
};

/** libseccomp's token for x32 (it is not an AUDIT_ARCH value: x32 shares x86_64's). */
const SCMP_ARCH_X32_TOKEN = 0x4000003e;
const ENOSYS = 38;
const EPERM = 1;
const MAX_ERRNO_RET = 0xffff;
const MAX_ARGS = 6;

function has(record: Readonly<Record<string, unknown>>, key: unknown): key is string {
  return typeof key === "string" && Object.hasOwn(record, key);
}

function show(value: unknown): string {
  if (typeof value === "bigint") return `${value}`;
  return JSON.stringify(value) ?? String(value);
}

function invalid(what: string, value: unknown, field: string, why?: string): InvalidArgument {
  const detail = why === undefined ? "" : `: ${why}`;
  return new InvalidArgument(`Invalid seccomp ${what}: ${show(value)} (${field})${detail}`);
}

function checkErrnoRet(value: unknown, action: string, field: string): void {
  if (value === undefined) return;
  if (ACTIONS[action] !== "errno" && ACTIONS[action] !== "trace") {
    throw invalid("errno value", value, field, `${action} takes no errno`);
  }
  if (!Number.isInteger(value) || (value as number) < 0 || (value as number) > MAX_ERRNO_RET) {
    throw invalid("errno value", value, field, `must be an integer from 0 to ${MAX_ERRNO_RET}`);
  }
}

function checkDatum(value: unknown, field: string, required: boolean): void {
  if (value === undefined && !required) return;
  if (typeof value === "bigint") {
    if (value < 0n || value > 0xffff_ffff_ffff_ffffn) {
      throw invalid("argument value", value, field, "must fit in 64 bits");
    }
    return;
  }
  if (!Number.isSafeInteger(value) || (value as number) < 0) {
    throw invalid(
      "argument value",
      value,
      field,
      "must be a non-negative integer below 2^53 (or a bigint)",
    );
  }
}

/**
 * Checks `linux.seccomp` without touching libseccomp: known actions,
 * operators, architectures and flags, errno values only where the action
 * takes one, argument indexes 0–5, non-empty name lists, and the
 * SCMP_ACT_NOTIFY / listenerPath pairing. Throws {@link InvalidArgument}
 * naming the field. Syscall names are checked by {@link compileSeccomp},
 * which needs libseccomp for that.
 */
export function validateSeccomp(seccomp: LinuxSeccomp): void {
  if (typeof seccomp !== "object" || seccomp === null) {
    throw invalid("configuration", seccomp, "linux.seccomp", "must be an object");
  }
  const def = seccomp.defaultAction;
  if (!has(ACTIONS, def)) throw invalid("action", def, "linux.seccomp.defaultAction");
  if (def === "SCMP_ACT_NOTIFY") {
    throw invalid(
      "action",
      def,
      "linux.seccomp.defaultAction",
      "SCMP_ACT_NOTIFY cannot be the default action",
    );
  }
  checkErrnoRet(seccomp.defaultErrnoRet, def, "linux.seccomp.defaultErrnoRet");

  if (seccomp.architectures !== undefined) {
    if (!Array.isArray(seccomp.architectures)) {
      throw invalid(
        "architectures",
        seccomp.architectures,
        "linux.seccomp.architectures",
        "must be an array",
      );
    }
    seccomp.architectures.forEach((arch, i) => {
      if (!has(ARCHITECTURES, arch)) {
        throw invalid("architecture", arch, `linux.seccomp.architectures[${i}]`);
      }
    });
  }
  if (seccomp.flags !== undefined) {
    if (!Array.isArray(seccomp.flags)) {
      throw invalid("flags", seccomp.flags, "linux.seccomp.flags", "must be an array");
    }
    seccomp.flags.forEach((flag, i) => {
      if (!has(FLAGS, flag)) throw invalid("flag", flag, `linux.seccomp.flags[${i}]`);
    });
  }

  const syscalls = seccomp.syscalls ?? [];
  if (!Array.isArray(syscalls)) {
    throw invalid("syscalls", syscalls, "linux.seccomp.syscalls", "must be an array");
  }
  let notify = false;
  syscalls.forEach((rule, i) => {
    const at = `linux.seccomp.syscalls[${i}]`;
    if (typeof rule !== "object" || rule === null) {
      throw invalid("syscall rule", rule, at, "must be an object");
    }
    if (!Array.isArray(rule.names) || rule.names.length === 0) {
      throw invalid("syscall names", rule.names, `${at}.names`, "must be a non-empty array");
    }
    rule.names.forEach((name, j) => {
      if (typeof name !== "string" || name === "") {
        throw invalid("syscall name", name, `${at}.names[${j}]`);
      }
    });
    if (!has(ACTIONS, rule.action)) throw invalid("action", rule.action, `${at}.action`);
    if (rule.action === "SCMP_ACT_NOTIFY") notify = true;
    checkErrnoRet(rule.errnoRet, rule.action, `${at}.errnoRet`);
    if (rule.args === undefined || rule.args === null) return;
    if (!Array.isArray(rule.args)) {
      throw invalid("arguments", rule.args, `${at}.args`, "must be an array");
    }
    rule.args.forEach((arg: LinuxSeccompArg, k) => {
      const argAt = `${at}.args[${k}]`;
      if (typeof arg !== "object" || arg === null) {
        throw invalid("argument", arg, argAt, "must be an object");
      }
      if (!Number.isInteger(arg.index) || arg.index < 0 || arg.index >= MAX_ARGS) {
        throw invalid(
          "argument index",
          arg.index,
          `${argAt}.index`,
          "must be an integer from 0 to 5",
        );
      }
      if (!has(OPERATORS, arg.op)) throw invalid("operator", arg.op, `${argAt}.op`);
      checkDatum(arg.value, `${argAt}.value`, true);
      checkDatum(arg.valueTwo, `${argAt}.valueTwo`, false);
    });
  });

  const listener = seccomp.listenerPath;
  if (listener !== undefined && (typeof listener !== "string" || listener === "")) {
    throw invalid(
      "listener path",
      listener,
      "linux.seccomp.listenerPath",
      "must be a non-empty string",
    );
  }
  if (listener !== undefined && !notify) {
    throw invalid(
      "listener path",
      listener,
      "linux.seccomp.listenerPath",
      "no syscall uses SCMP_ACT_NOTIFY",
    );
  }
  if (notify && listener === undefined) {
    throw invalid(
      "listener path",
      listener,
      "linux.seccomp.listenerPath",
      "a syscall uses SCMP_ACT_NOTIFY, so a listener must be named",
    );
  }
  if (seccomp.flags?.includes("SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV") && !notify) {
    throw invalid(
      "flag",
      "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
      "linux.seccomp.flags",
      "it needs a syscall that uses SCMP_ACT_NOTIFY",
    );
  }
}

/** The libseccomp action value for an OCI action name and its errnoRet. */
function actionValue(action: string, errnoRet: number | undefined): number {
  const a = ACTIONS[action];
  if (a === "errno") return scmpActErrno(errnoRet ?? EPERM);
  if (a === "trace") return scmpActTrace(errnoRet ?? EPERM);
  if (a === undefined) throw new InvalidArgument(`Invalid seccomp action: ${show(action)}`);
  return a >>> 0;
}

function resolveArch(lib: Libseccomp, name: string, field: string): number {
  const token = has(ARCHITECTURES, name) ? lib.archResolveName(ARCHITECTURES[name]!) : undefined;
  if (token === undefined) {
    const v = lib.version();
    throw invalid(
      "architecture",
      name,
      field,
      `libseccomp ${v.major}.${v.minor}.${v.micro} does not support it`,
    );
  }
  return token;
}

function conditionOf(arg: LinuxSeccompArg): ScmpArgCmp {
  return {
    arg: arg.index,
    op: OPERATORS[arg.op]!,
    datumA: BigInt(arg.value),
    datumB: BigInt(arg.valueTwo ?? 0),
  };
}

/** libseccomp errors caused by the profile's content rather than by the machine. */
const INPUT_ERRNOS = new Set(["EINVAL", "EEXIST", "EDOM", "EFAULT"]);

function wrapLibseccomp(err: unknown, action: string): Error {
  if (!(err instanceof SyscallError)) return err as Error;
  const cls = INPUT_ERRNOS.has(err.errnoName) ? InvalidArgument : Internal;
  return new cls(`${action}: ${err.message}`, { cause: err });
}

/** What building the libseccomp context found out. */
interface Built {
  ctx: SeccompContext;
  defaultAction: number;
  /** Architectures in the filter (libseccomp tokens). */
  arches: number[];
  /** Per architecture token, the largest syscall number the profile names. */
  maxSyscall: Map<number, number>;
  /** True when at least one SCMP_ACT_NOTIFY rule made it into the filter. */
  notify: boolean;
}

function build(lib: Libseccomp, seccomp: LinuxSeccomp, options: CompileSeccompOptions): Built {
  validateSeccomp(seccomp);
  const defaultAction = actionValue(seccomp.defaultAction, seccomp.defaultErrnoRet);
  const ctx = lib.init(defaultAction);
  try {
    ctx.attrSet(SCMP_FLTATR_CTL_NNP, 0);
    const native = lib.archNative();
    const arches = [native];
    const addArch = (token: number, name: string) => {
      try {
        ctx.archAdd(token);
      } catch (err) {
        // EDOM: libseccomp cannot mix big- and little-endian architectures.
        throw wrapLibseccomp(err, `Cannot add seccomp architecture ${name}`);
      }
    };
    if (options.arch !== undefined) {
      const token = resolveArch(lib, options.arch, "options.arch");
      if (token !== native) {
        // Remove first: the new one may differ in endianness.
        ctx.archRemove(native);
        addArch(token, options.arch);
        arches[0] = token;
      }
    }
    (seccomp.architectures ?? []).forEach((name, i) => {
      const token = resolveArch(lib, name, `linux.seccomp.architectures[${i}]`);
      addArch(token, name);
      if (!arches.includes(token)) arches.push(token);
    });

    const maxSyscall = new Map<number, number>();
    let notify = false;
    let rules = 0;
    (seccomp.syscalls ?? []).forEach((rule, i) => {
      const action = actionValue(rule.action, rule.errnoRet);
      const conditions = (rule.args ?? []).map(conditionOf);
      // libseccomp refuses two conditions on one argument in a rule: fall
      // back to one rule per condition, as runc and crun do.
      const perIndex = new Set(conditions.map((c) => c.arg));
      const groups = perIndex.size === conditions.length
        ? [conditions]
        : conditions.map((c) => [c]);
      rule.names.forEach((name, j) => {
        const nr = lib.syscallResolveName(name);
        if (nr === NR_SCMP_ERROR) {
          if (options.unknownSyscalls === "ignore") return;
          const field = `linux.seccomp.syscalls[${i}].names[${j}]`;
          throw new InvalidArgument(`Invalid seccomp syscall name: ${show(name)} (${field})`);
        }
        let present = false;
        for (const arch of arches) {
          const n = lib.syscallResolveNameArch(arch, name);
          if (n < 0) continue;
          present = true;
          maxSyscall.set(arch, Math.max(maxSyscall.get(arch) ?? -1, n));
        }
        // Known to libseccomp but on none of this filter's architectures.
        if (!present || action === defaultAction) return;
        for (const group of groups) {
          try {
            ctx.ruleAdd(action, nr, group, show(name));
          } catch (err) {
            throw wrapLibseccomp(err, `Cannot add seccomp rule for syscall ${show(name)}`);
          }
          rules++;
        }
        if (action === SCMP_ACT_NOTIFY) notify = true;
      });
    });
    // libseccomp's binary-tree layout for long profiles (runc's threshold;
    // libseccomp <= 2.5.4 misbehaves with it on an empty filter).
    if (rules > 32) ctx.attrSet(SCMP_FLTATR_CTL_OPTIMIZE, 2);
    return { ctx, defaultAction, arches, maxSyscall, notify };
  } catch (err) {
    ctx.release();
    throw wrapLibseccomp(err, "Cannot build seccomp filter");
  }
}

/**
 * The filter {@link compileSeccomp} returns: the BPF program and the
 * seccomp(2) flags, computed before the container process exists.
 */
export class CompiledSeccompFilter implements SeccompFilter {
  /** The BPF program (`struct sock_filter[]`), ENOSYS stub included. Shared: do not modify. */
  readonly bpf: Uint8Array;
  /** SECCOMP_FILTER_FLAG_* bits passed to seccomp(2). */
  readonly flags: number;
  /** True when loading returns a listener fd (a rule uses SCMP_ACT_NOTIFY). */
  readonly notify: boolean;
  #lib: Libseccomp;
  #program: BpfProgram | undefined;

  /** Use {@link compileSeccomp}. */
  constructor(lib: Libseccomp, program: BpfProgram, flags: number, notify: boolean) {
    this.#lib = lib;
    this.#program = program;
    this.bpf = program.instructions;
    this.flags = flags;
    this.notify = notify;
  }

  load(): number | undefined {
    if (this.#program === undefined) throw new Error("seccomp filter loaded after release");
    const fd = seccompSetModeFilter(this.#lib, this.#program, this.flags);
    return this.notify ? fd : undefined;
  }

  release(): void {
    this.#program = undefined;
  }
}

function isAllowLike(action: number): boolean {
  return action === SCMP_ACT_ALLOW || action === SCMP_ACT_LOG ||
    (action & 0xffff0000) === 0x7ff00000;
}

/**
 * Compiles `linux.seccomp` for this machine (or `options.arch`). Runs the
 * whole libseccomp side now; the returned filter's `load()` only installs
 * the program. The last few programs are kept in memory, so compiling the
 * same profile again in this process costs next to nothing.
 *
 * Throws {@link InvalidArgument} naming the bad field (unknown action,
 * operator, architecture, flag or syscall name), or for what libseccomp
 * refuses (naming the call, the syscall and the errno); throws Unavailable
 * when libseccomp cannot be loaded.
 *
 * @example
 * ```ts
 * const filter = compileSeccomp(spec.linux.seccomp);
 * const pid = sys.fork();
 * if (pid === 0) {
 *   const listener = filter.load();
 *   sys.execve(path, argv, env);
 * }
 * filter.release();
 * ```
 */
export function compileSeccomp(
  seccomp: LinuxSeccomp,
  options: CompileSeccompOptions = {},
): CompiledSeccompFilter {
  const lib = libseccomp();
  validateSeccomp(seccomp);
  const key = JSON.stringify([
    seccomp.defaultAction,
    seccomp.defaultErrnoRet,
    seccomp.architectures,
    seccomp.flags,
    seccomp.syscalls,
    options.arch,
    options.unknownSyscalls,
  ], (_, v) => typeof v === "bigint" ? `${v}n` : v);
  let compiled = memo.get(key);
  if (compiled === undefined) {
    compiled = compile(lib, seccomp, options);
    if (memo.size >= MEMO_SIZE) memo.delete(memo.keys().next().value!);
  } else {
    memo.delete(key);
  }
  memo.set(key, compiled);
  return new CompiledSeccompFilter(lib, compiled.program, compiled.flags, compiled.notify);
}

/** What a compilation produced; shared by every filter compiled from the same profile. */
interface Compiled {
  program: BpfProgram;
  flags: number;
  notify: boolean;
}

/**
 * Recently compiled programs by profile: libseccomp spends ~12 ms generating
 * the default profile's BPF, which a long-lived process (a shim starting
 * many containers) need not pay twice. Programs are never mutated.
 */
const memo = new Map<string, Compiled>();
const MEMO_SIZE = 8;

function compile(lib: Libseccomp, seccomp: LinuxSeccomp, options: CompileSeccompOptions): Compiled {
  const built = build(lib, seccomp, options);
  let program: Uint8Array<ArrayBuffer>;
  try {
    program = built.ctx.exportBpf();
  } catch (err) {
    throw wrapLibseccomp(err, "Cannot export seccomp filter");
  } finally {
    built.ctx.release();
  }

  if (!isAllowLike(built.defaultAction) && built.defaultAction !== scmpActErrno(ENOSYS)) {
    const stub = enosysStub(
      built.arches.flatMap((arch) => {
        const max = built.maxSyscall.get(arch);
        return max === undefined ? [] : [{ arch, maxSyscall: max }];
      }),
    );
    if (stub.length > 0) {
      const joined = new Uint8Array(stub.length + program.length);
      joined.set(stub);
      joined.set(program, stub.length);
      program = joined;
    }
  }

  let flags = 0;
  for (const name of seccomp.flags ?? []) flags |= FLAGS[name]!;
  if (built.notify) {
    flags |= SECCOMP_FILTER_FLAG_NEW_LISTENER;
    // The kernel refuses TSYNC with a listener unless told how to report a
    // thread it could not synchronise.
    if (flags & SECCOMP_FILTER_FLAG_TSYNC) flags |= SECCOMP_FILTER_FLAG_TSYNC_ESRCH;
  } else {
    flags &= ~SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
  }
  return { program: bpfProgram(program), flags, notify: built.notify };
}

/**
 * libseccomp's pseudo filter code (PFC) for `linux.seccomp`: the rules as
 * libseccomp holds them, for debugging and tests. Without the ENOSYS stub.
 */
export function seccompPseudoCode(
  seccomp: LinuxSeccomp,
  options: CompileSeccompOptions = {},
): string {
  const built = build(libseccomp(), seccomp, options);
  try {
    return built.ctx.exportPfc();
  } finally {
    built.ctx.release();
  }
}

/** One architecture of a filter and the largest syscall number its profile names. */
export interface EnosysArch {
  /** libseccomp architecture token (AUDIT_ARCH_* value; x32 has its own token). */
  arch: number;
  maxSyscall: number;
}

// Classic BPF opcodes.
const BPF_LD_W_ABS = 0x20;
const BPF_JMP_JA = 0x05;
const BPF_JMP_JEQ_K = 0x15;
const BPF_JMP_JGT_K = 0x25;
const BPF_JMP_JSET_K = 0x45;
const BPF_RET_K = 0x06;
const SECCOMP_DATA_NR = 0;
const SECCOMP_DATA_ARCH = 4;

type Target = string | 0;
interface Insn {
  code: number;
  jt: Target;
  jf: Target;
  k: number;
}

/**
 * runc's "-ENOSYS patch" as BPF to prepend to a filter: on each listed
 * architecture, a syscall numbered above the largest one the profile names
 * fails with ENOSYS instead of the default action. Such a call is newer than
 * the profile, and programs (glibc's clone3 and fchmodat2 fallbacks) treat
 * ENOSYS as "not implemented, use the old call" but EPERM as a hard error.
 * On s390(x), syscall 0 (the multiplexer for unknown numbers) gets ENOSYS
 * too. Everything else falls through to the filter, which re-reads the
 * architecture itself. Returns an empty array when there is nothing to do.
 */
export function enosysStub(arches: readonly EnosysArch[]): Uint8Array<ArrayBuffer> {
  interface Group {
    audit: number;
    max?: number;
    x32Max?: number;
  }
  const groups: Group[] = [];
  for (const { arch, maxSyscall } of arches) {
    const audit = arch === SCMP_ARCH_X32_TOKEN ? AUDIT_ARCH_X86_64 : arch >>> 0;
    let group = groups.find((g) => g.audit === audit);
    if (group === undefined) groups.push(group = { audit });
    if (arch === SCMP_ARCH_X32_TOKEN) group.x32Max = maxSyscall >>> 0;
    else group.max = maxSyscall >>> 0;
  }
  if (groups.length === 0) return new Uint8Array(0);

  const insns: Insn[] = [];
  const labels = new Map<string, number>();
  const emit = (code: number, k: number, jt: Target = 0, jf: Target = 0) =>
    insns.push({ code, jt, jf, k: k >>> 0 });
  const label = (name: string) => labels.set(name, insns.length);

  emit(BPF_LD_W_ABS, SECCOMP_DATA_ARCH);
  groups.forEach((g, i) => {
    emit(BPF_JMP_JEQ_K, g.audit, 0, `next${i}`);
    emit(BPF_LD_W_ABS, SECCOMP_DATA_NR);
    if (g.audit === AUDIT_ARCH_S390 || g.audit === AUDIT_ARCH_S390X) {
      emit(BPF_JMP_JEQ_K, 0, "enosys", 0);
    }
    if (g.audit === AUDIT_ARCH_X86_64) {
      emit(BPF_JMP_JSET_K, X32_SYSCALL_BIT, g.x32Max === undefined ? "filter" : `x32_${i}`, 0);
      if (g.max === undefined) emit(BPF_JMP_JA, 0, "filter");
      else emit(BPF_JMP_JGT_K, g.max, "enosys", "filter");
      if (g.x32Max !== undefined) {
        label(`x32_${i}`);
        emit(BPF_JMP_JGT_K, g.x32Max, "enosys", "filter");
      }
    } else {
      emit(BPF_JMP_JGT_K, g.max!, "enosys", "filter");
    }
    label(`next${i}`);
  });
  emit(BPF_JMP_JA, 0, "filter");
  label("enosys");
  emit(BPF_RET_K, scmpActErrno(ENOSYS));
  label("filter");

  const out = new Uint8Array(insns.length * BPF_INSN_SIZE);
  const view = new DataView(out.buffer);
  const offset = (from: number, to: Target): number => {
    if (to === 0) return 0;
    const at = labels.get(to);
    if (at === undefined || at <= from) {
      throw new Internal(`Cannot assemble seccomp stub: bad jump to ${to}`);
    }
    return at - from - 1;
  };
  insns.forEach((insn, i) => {
    const o = i * BPF_INSN_SIZE;
    view.setUint16(o, insn.code, true);
    if (insn.code === BPF_JMP_JA) {
      view.setUint32(o + 4, offset(i, insn.jt), true);
    } else {
      const jt = offset(i, insn.jt), jf = offset(i, insn.jf);
      if (jt > 255 || jf > 255) throw new Internal("Cannot assemble seccomp stub: jump too long");
      view.setUint8(o + 2, jt);
      view.setUint8(o + 3, jf);
      view.setUint32(o + 4, insn.k, true);
    }
  });
  return out;
}
