/**
 * libseccomp (`libseccomp.so.2`, Debian 12 ships 2.5.4) through Deno FFI,
 * plus the raw `seccomp(2)` call that installs an exported BPF program.
 *
 * Rules this file keeps:
 * - every symbol is synchronous; libseccomp reports failures as negative
 *   errno values, which {@link SeccompContext} turns into a
 *   {@link SyscallError} naming the libseccomp function, what it was applied
 *   to and the errno;
 * - only the non-variadic `seccomp_rule_add_array` adds rules (variadic C
 *   functions cannot be declared faithfully through FFI);
 * - `struct scmp_arg_cmp` is `{ unsigned int arg; enum scmp_compare op;
 *   scmp_datum_t datum_a; scmp_datum_t datum_b; }`: 4 + 4 + 8 + 8 = 24 bytes,
 *   no padding, host byte order.
 *
 * When the library cannot be loaded, {@link libseccomp} throws
 * {@link Unavailable}: a container that asked for seccomp must never run
 * unconfined.
 *
 * @module
 */

import { Unavailable } from "../errors.ts";
import { ERRNO, SECCOMP_SET_MODE_FILTER, SYS_SECCOMP } from "./constants.ts";
import { SyscallError } from "./syscall.ts";

// Actions (seccomp.h; the kernel's SECCOMP_RET_* values).
/** Kills the calling thread (libseccomp's SCMP_ACT_KILL is this one). */
export const SCMP_ACT_KILL_THREAD = 0x00000000;
/** Kills the whole process with SIGSYS. */
export const SCMP_ACT_KILL_PROCESS = 0x80000000;
/** Sends SIGSYS to the thread. */
export const SCMP_ACT_TRAP = 0x00030000;
/** Hands the call to a user-space supervisor through the listener fd. */
export const SCMP_ACT_NOTIFY = 0x7fc00000;
/** Allows the call after logging it. */
export const SCMP_ACT_LOG = 0x7ffc0000;
/** Allows the call. */
export const SCMP_ACT_ALLOW = 0x7fff0000;

/** SCMP_ACT_ERRNO(errno): the call fails with `errno`. */
export function scmpActErrno(errno: number): number {
  return (0x00050000 | (errno & 0xffff)) >>> 0;
}

/** SCMP_ACT_TRACE(msg): notifies a ptrace tracer with `msg`. */
export function scmpActTrace(msg: number): number {
  return (0x7ff00000 | (msg & 0xffff)) >>> 0;
}

// Comparison operators (enum scmp_compare).
export const SCMP_CMP_NE = 1;
export const SCMP_CMP_LT = 2;
export const SCMP_CMP_LE = 3;
export const SCMP_CMP_EQ = 4;
export const SCMP_CMP_GE = 5;
export const SCMP_CMP_GT = 6;
export const SCMP_CMP_MASKED_EQ = 7;

// Filter attributes (enum scmp_filter_attr).
export const SCMP_FLTATR_ACT_DEFAULT = 1;
export const SCMP_FLTATR_ACT_BADARCH = 2;
export const SCMP_FLTATR_CTL_NNP = 3;
export const SCMP_FLTATR_CTL_TSYNC = 4;
export const SCMP_FLTATR_API_TSKIP = 5;
export const SCMP_FLTATR_CTL_LOG = 6;
export const SCMP_FLTATR_CTL_SSB = 7;
export const SCMP_FLTATR_CTL_OPTIMIZE = 8;
export const SCMP_FLTATR_API_SYSRAWRC = 9;

/** What `seccomp_syscall_resolve_name*` returns for a name libseccomp does not know at all. */
export const NR_SCMP_ERROR = -1;

/** One argument condition of a rule (`struct scmp_arg_cmp`). */
export interface ScmpArgCmp {
  /** Argument index, 0 to 5. */
  arg: number;
  /** One of the SCMP_CMP_* operators. */
  op: number;
  datumA: bigint;
  datumB: bigint;
}

/** Version of the loaded libseccomp. */
export interface ScmpVersion {
  major: number;
  minor: number;
  micro: number;
}

/** Size of `struct scmp_arg_cmp`. */
export const SCMP_ARG_CMP_SIZE = 24;

const SECCOMP_SYMBOLS = {
  seccomp_version: { parameters: [], result: "pointer" },
  seccomp_api_get: { parameters: [], result: "u32" },
  seccomp_init: { parameters: ["u32"], result: "pointer" },
  seccomp_reset: { parameters: ["pointer", "u32"], result: "i32" },
  seccomp_release: { parameters: ["pointer"], result: "void" },
  seccomp_arch_native: { parameters: [], result: "u32" },
  seccomp_arch_resolve_name: { parameters: ["buffer"], result: "u32" },
  seccomp_arch_add: { parameters: ["pointer", "u32"], result: "i32" },
  seccomp_arch_remove: { parameters: ["pointer", "u32"], result: "i32" },
  seccomp_syscall_resolve_name: { parameters: ["buffer"], result: "i32" },
  seccomp_syscall_resolve_name_arch: { parameters: ["u32", "buffer"], result: "i32" },
  seccomp_rule_add_array: {
    parameters: ["pointer", "u32", "i32", "u32", "buffer"],
    result: "i32",
  },
  seccomp_attr_set: { parameters: ["pointer", "i32", "u32"], result: "i32" },
  seccomp_attr_get: { parameters: ["pointer", "i32", "buffer"], result: "i32" },
  seccomp_load: { parameters: ["pointer"], result: "i32" },
  seccomp_notify_fd: { parameters: ["pointer"], result: "i32" },
  seccomp_export_bpf: { parameters: ["pointer", "i32"], result: "i32" },
  seccomp_export_pfc: { parameters: ["pointer", "i32"], result: "i32" },
} as const;

// The few libc functions this module needs of its own, so that loading a
// filter in a forked child touches no lazily opened library.
const LIBC_SYMBOLS = {
  __errno_location: { parameters: [], result: "pointer" },
  // long syscall(long number, ...): integer arguments are passed exactly as
  // for a non-variadic function on x86_64 and aarch64 (see DESIGN.md).
  syscall: { parameters: ["i64", "u64", "u64", "buffer"], result: "i64" },
  memfd_create: { parameters: ["buffer", "u32"], result: "i32" },
  pread: { parameters: ["i32", "buffer", "usize", "i64"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
} as const;

type SeccompSymbols = Deno.DynamicLibrary<typeof SECCOMP_SYMBOLS>["symbols"];
type LibcSymbols = Deno.DynamicLibrary<typeof LIBC_SYMBOLS>["symbols"];

const MFD_CLOEXEC = 1;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function cString(s: string): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(encoder.encode(s).length + 1);
  encoder.encodeInto(s, bytes);
  return bytes;
}

/** Encodes conditions as an array of `struct scmp_arg_cmp`. */
export function encodeArgCmps(args: readonly ScmpArgCmp[]): Uint8Array<ArrayBuffer> {
  const buf = new Uint8Array(SCMP_ARG_CMP_SIZE * args.length);
  const view = new DataView(buf.buffer);
  const little = true; // x86_64 and aarch64 are little-endian
  args.forEach((a, i) => {
    const o = i * SCMP_ARG_CMP_SIZE;
    view.setUint32(o, a.arg, little);
    view.setUint32(o + 4, a.op, little);
    view.setBigUint64(o + 8, BigInt.asUintN(64, a.datumA), little);
    view.setBigUint64(o + 16, BigInt.asUintN(64, a.datumB), little);
  });
  return buf;
}

/**
 * A libseccomp filter context (`scmp_filter_ctx`). Methods throw
 * {@link SyscallError} with the libseccomp function's name and the errno.
 * Call {@link release} when done; the context is not garbage-collected.
 */
export class SeccompContext {
  #lib: Libseccomp;
  #ctx: Deno.PointerValue;

  /** Use {@link Libseccomp.init}. */
  constructor(lib: Libseccomp, ctx: Deno.PointerObject) {
    this.#lib = lib;
    this.#ctx = ctx;
  }

  #ptr(): Deno.PointerObject {
    if (this.#ctx === null) throw new Error("seccomp filter context used after release");
    return this.#ctx;
  }

  #check(rc: number, fn: string, subject?: string): number {
    if (rc < 0) throw new SyscallError(fn, -rc, subject);
    return rc;
  }

  /** seccomp_arch_add; an architecture already present is not an error. */
  archAdd(arch: number): void {
    const rc = this.#lib.symbols.seccomp_arch_add(this.#ptr(), arch >>> 0);
    if (rc === -ERRNO.EEXIST!) return;
    this.#check(rc, "seccomp_arch_add", `0x${(arch >>> 0).toString(16)}`);
  }

  /** seccomp_arch_remove. */
  archRemove(arch: number): void {
    const rc = this.#lib.symbols.seccomp_arch_remove(this.#ptr(), arch >>> 0);
    this.#check(rc, "seccomp_arch_remove", `0x${(arch >>> 0).toString(16)}`);
  }

  /**
   * seccomp_rule_add_array. `syscall` is a number as returned by
   * `seccomp_syscall_resolve_name` (a pseudo number for calls the native
   * architecture lacks); `subject` names the rule in errors.
   */
  ruleAdd(action: number, syscall: number, args: readonly ScmpArgCmp[], subject?: string): void {
    const buf = args.length > 0 ? encodeArgCmps(args) : null;
    const rc = this.#lib.symbols.seccomp_rule_add_array(
      this.#ptr(),
      action >>> 0,
      syscall,
      args.length,
      buf,
    );
    this.#check(rc, "seccomp_rule_add_array", subject);
  }

  /** seccomp_attr_set. */
  attrSet(attr: number, value: number): void {
    const rc = this.#lib.symbols.seccomp_attr_set(this.#ptr(), attr, value >>> 0);
    this.#check(rc, "seccomp_attr_set", `attribute ${attr}`);
  }

  /** seccomp_attr_get. */
  attrGet(attr: number): number {
    const out = new Uint32Array(1);
    const rc = this.#lib.symbols.seccomp_attr_get(this.#ptr(), attr, new Uint8Array(out.buffer));
    this.#check(rc, "seccomp_attr_get", `attribute ${attr}`);
    return out[0]!;
  }

  /** seccomp_reset: empties the context and sets a new default action. */
  reset(defaultAction: number): void {
    this.#check(this.#lib.symbols.seccomp_reset(this.#ptr(), defaultAction >>> 0), "seccomp_reset");
  }

  /**
   * seccomp_load: generates the program and installs it on the calling
   * thread. tug's runtime installs exported programs with
   * {@link seccompSetModeFilter} instead; this is here for completeness.
   */
  load(): void {
    this.#check(this.#lib.symbols.seccomp_load(this.#ptr()), "seccomp_load");
  }

  /** seccomp_notify_fd: the listener fd after {@link load}, when a rule notifies. */
  notifyFd(): number {
    return this.#check(this.#lib.symbols.seccomp_notify_fd(this.#ptr()), "seccomp_notify_fd");
  }

  /** seccomp_export_bpf: the BPF program as raw `struct sock_filter` records. */
  exportBpf(): Uint8Array<ArrayBuffer> {
    return this.#export("seccomp_export_bpf");
  }

  /** seccomp_export_pfc: libseccomp's human-readable pseudo filter code. */
  exportPfc(): string {
    return decoder.decode(this.#export("seccomp_export_pfc"));
  }

  #export(fn: "seccomp_export_bpf" | "seccomp_export_pfc"): Uint8Array<ArrayBuffer> {
    const libc = this.#lib.libc;
    const fd = libc.memfd_create(cString("tug-seccomp"), MFD_CLOEXEC);
    if (fd < 0) throw new SyscallError("memfd_create", this.#lib.errno(), fn);
    try {
      this.#check(this.#lib.symbols[fn](this.#ptr(), fd), fn);
      const chunks: Uint8Array<ArrayBuffer>[] = [];
      let offset = 0;
      for (;;) {
        const chunk = new Uint8Array(65536);
        const n = Number(libc.pread(fd, chunk, BigInt(chunk.length), BigInt(offset)));
        if (n < 0) {
          const e = this.#lib.errno();
          if (e === ERRNO.EINTR!) continue;
          throw new SyscallError("pread", e, fn);
        }
        if (n === 0) break;
        chunks.push(chunk.subarray(0, n));
        offset += n;
      }
      const out = new Uint8Array(offset);
      let at = 0;
      for (const c of chunks) {
        out.set(c, at);
        at += c.length;
      }
      return out;
    } finally {
      libc.close(fd);
    }
  }

  /** seccomp_release; further use of the context throws. Safe to call twice. */
  release(): void {
    if (this.#ctx === null) return;
    this.#lib.symbols.seccomp_release(this.#ctx);
    this.#ctx = null;
  }
}

/** The opened libseccomp library. Get the shared one with {@link libseccomp}. */
export class Libseccomp {
  /** The raw FFI symbols. */
  readonly symbols: SeccompSymbols;
  /** The libc symbols this module uses. */
  readonly libc: LibcSymbols;

  /** Use {@link libseccomp} or {@link loadLibseccomp}. */
  constructor(symbols: SeccompSymbols, libc: LibcSymbols) {
    this.symbols = symbols;
    this.libc = libc;
  }

  /** The calling thread's errno. */
  errno(): number {
    const p = this.libc.__errno_location();
    return p === null ? 0 : new Deno.UnsafePointerView(p).getInt32();
  }

  /** seccomp_version. */
  version(): ScmpVersion {
    const p = this.symbols.seccomp_version();
    if (p === null) throw new SyscallError("seccomp_version", ERRNO.EINVAL!);
    const v = new Deno.UnsafePointerView(p);
    return { major: v.getUint32(0), minor: v.getUint32(4), micro: v.getUint32(8) };
  }

  /** seccomp_api_get: the API level libseccomp detected for this kernel. */
  apiLevel(): number {
    return this.symbols.seccomp_api_get();
  }

  /** seccomp_init with `defaultAction`. */
  init(defaultAction: number): SeccompContext {
    const ctx = this.symbols.seccomp_init(defaultAction >>> 0);
    if (ctx === null) {
      throw new SyscallError(
        "seccomp_init",
        ERRNO.EINVAL!,
        `0x${(defaultAction >>> 0).toString(16)}`,
      );
    }
    return new SeccompContext(this, ctx);
  }

  /** seccomp_arch_native: the token (AUDIT_ARCH_*) of the running architecture. */
  archNative(): number {
    return this.symbols.seccomp_arch_native() >>> 0;
  }

  /** seccomp_arch_resolve_name (`x86_64`, `aarch64`, …); undefined when unknown. */
  archResolveName(name: string): number | undefined {
    const token = this.symbols.seccomp_arch_resolve_name(cString(name)) >>> 0;
    return token === 0 ? undefined : token;
  }

  /**
   * seccomp_syscall_resolve_name: the native number, a negative pseudo number
   * (below -1) for a call the native architecture lacks, or
   * {@link NR_SCMP_ERROR} for a name libseccomp does not know.
   */
  syscallResolveName(name: string): number {
    return this.symbols.seccomp_syscall_resolve_name(cString(name));
  }

  /** seccomp_syscall_resolve_name_arch: like {@link syscallResolveName} for `arch`. */
  syscallResolveNameArch(arch: number, name: string): number {
    return this.symbols.seccomp_syscall_resolve_name_arch(arch >>> 0, cString(name));
  }
}

/** The name tug asks the dynamic loader for. */
export const LIBSECCOMP_SONAME = "libseccomp.so.2";

/**
 * Opens libseccomp from `path` (default `libseccomp.so.2`). Throws
 * {@link Unavailable} when it cannot be loaded.
 */
export function loadLibseccomp(path: string = LIBSECCOMP_SONAME): Libseccomp {
  let symbols: SeccompSymbols;
  try {
    symbols = Deno.dlopen(path, SECCOMP_SYMBOLS).symbols;
  } catch (err) {
    throw new Unavailable(
      `Cannot confine the container: seccomp was requested but ${path} could not be loaded (install libseccomp2)`,
      { cause: err },
    );
  }
  const libc = Deno.dlopen("libc.so.6", LIBC_SYMBOLS).symbols;
  return new Libseccomp(symbols, libc);
}

let shared: Libseccomp | undefined;

/** The process-wide libseccomp, opened on first use. Throws {@link Unavailable}. */
export function libseccomp(): Libseccomp {
  shared ??= loadLibseccomp();
  return shared;
}

/** Size of one BPF instruction (`struct sock_filter`). */
export const BPF_INSN_SIZE = 8;

/**
 * A BPF program ready for `seccomp(SECCOMP_SET_MODE_FILTER)`: the
 * instructions and the `struct sock_fprog` pointing at them. Build it before
 * forking; installing it then allocates nothing.
 */
export interface BpfProgram {
  /** The instructions, `struct sock_filter[]` in host byte order. */
  readonly instructions: Uint8Array<ArrayBuffer>;
  /** `struct sock_fprog { unsigned short len; struct sock_filter *filter; }`. */
  readonly fprog: Uint8Array<ArrayBuffer>;
}

/** Wraps exported instructions in a `struct sock_fprog`. */
export function bpfProgram(instructions: Uint8Array<ArrayBuffer>): BpfProgram {
  if (instructions.length === 0 || instructions.length % BPF_INSN_SIZE !== 0) {
    throw new SyscallError("seccomp", ERRNO.EINVAL!, `program of ${instructions.length} bytes`);
  }
  const count = instructions.length / BPF_INSN_SIZE;
  if (count > 0xffff) throw new SyscallError("seccomp", ERRNO.E2BIG!, `${count} instructions`);
  const fprog = new Uint8Array(16);
  const view = new DataView(fprog.buffer);
  view.setUint16(0, count, true);
  view.setBigUint64(
    8,
    BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(instructions))),
    true,
  );
  return { instructions, fprog };
}

/**
 * `seccomp(SECCOMP_SET_MODE_FILTER, flags, program)` on the calling thread.
 * Returns the listener fd when `flags` has SECCOMP_FILTER_FLAG_NEW_LISTENER,
 * else 0. Synchronous and free of libseccomp work, for a forked child right before
 * execve. Without no_new_privs the caller needs CAP_SYS_ADMIN.
 */
export function seccompSetModeFilter(lib: Libseccomp, program: BpfProgram, flags: number): number {
  const rc = lib.libc.syscall(
    BigInt(SYS_SECCOMP),
    BigInt(SECCOMP_SET_MODE_FILTER),
    BigInt(flags >>> 0),
    program.fprog,
  );
  if (rc < 0n) throw new SyscallError("seccomp", lib.errno(), "SECCOMP_SET_MODE_FILTER");
  // Keep the instructions the fprog points at reachable until after the call.
  void program.instructions;
  return Number(rc);
}
