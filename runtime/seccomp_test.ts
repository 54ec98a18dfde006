import { InvalidArgument } from "../errors.ts";
import {
  AUDIT_ARCH_I386,
  AUDIT_ARCH_S390X,
  AUDIT_ARCH_X86_64,
  O_CLOEXEC,
  O_CREAT,
  O_TRUNC,
  O_WRONLY,
  PR_SET_DUMPABLE,
  RLIMITS,
  SECCOMP_FILTER_FLAG_LOG,
  SECCOMP_FILTER_FLAG_NEW_LISTENER,
  SECCOMP_FILTER_FLAG_SPEC_ALLOW,
  SECCOMP_FILTER_FLAG_TSYNC,
  SECCOMP_FILTER_FLAG_TSYNC_ESRCH,
  SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
  SIGNALS,
  SOCK_STREAM,
  X32_SYSCALL_BIT,
} from "../ffi/constants.ts";
import { errno, libcSyscall } from "../ffi/libc.ts";
import { libseccomp } from "../ffi/seccomp.ts";
import { exitCodeOf, signalOf, SyscallError } from "../ffi/syscall.ts";
import {
  assert,
  assertEquals,
  assertMatch,
  assertStringIncludes,
  assertThrows,
} from "../tests/assert.ts";
import { BUSYBOX, requires } from "../tests/harness.ts";
import {
  compileSeccomp,
  enosysStub,
  type SeccompFilter,
  seccompPseudoCode,
  validateSeccomp,
} from "./seccomp.ts";
import { defaultSeccompProfile } from "./seccomp_default.ts";
import type { LinuxSeccomp } from "./spec.ts";

const needsLib = requires("libseccomp");
const needsKernel = requires("root", "libseccomp");
const needsBusybox = requires("root", "libseccomp", "busybox");
const sys = libcSyscall();
const EPERM = 1, ENOSYS = 38, EXDEV = 18;

/** Docker's default capability set (no CAP_SYS_ADMIN). */
const DOCKER_CAPS = [
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

// libc calls the tests make in their children that the Syscall layer lacks.
const extra = Deno.dlopen("libc.so.6", {
  personality: { parameters: ["u64"], result: "i32" },
  syscall: { parameters: ["i64", "i64", "i64", "i64"], result: "i64" },
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32" },
}).symbols;

// ---------------------------------------------------------------- validation

function valid(): LinuxSeccomp {
  return {
    defaultAction: "SCMP_ACT_ERRNO",
    defaultErrnoRet: 1,
    architectures: ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64"],
    flags: [
      "SECCOMP_FILTER_FLAG_LOG",
      "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
      "SECCOMP_FILTER_FLAG_TSYNC",
    ],
    syscalls: [
      { names: ["read", "write"], action: "SCMP_ACT_ALLOW" },
      { names: ["mkdir"], action: "SCMP_ACT_ERRNO", errnoRet: 38 },
      { names: ["ptrace"], action: "SCMP_ACT_TRACE", errnoRet: 7 },
      { names: ["reboot"], action: "SCMP_ACT_KILL_PROCESS" },
      { names: ["kexec_load"], action: "SCMP_ACT_KILL" },
      { names: ["acct"], action: "SCMP_ACT_KILL_THREAD" },
      { names: ["swapon"], action: "SCMP_ACT_TRAP" },
      { names: ["sync"], action: "SCMP_ACT_LOG" },
      {
        names: ["personality"],
        action: "SCMP_ACT_ALLOW",
        args: [
          { index: 0, value: 8, op: "SCMP_CMP_EQ" },
          { index: 1, value: 1, op: "SCMP_CMP_NE" },
          { index: 2, value: 3, op: "SCMP_CMP_LT" },
          { index: 3, value: 3, op: "SCMP_CMP_LE" },
          { index: 4, value: 3, op: "SCMP_CMP_GE" },
          { index: 5, value: 0xff, valueTwo: 1, op: "SCMP_CMP_MASKED_EQ" },
        ],
      },
      {
        names: ["socket"],
        action: "SCMP_ACT_ALLOW",
        args: [{ index: 0, value: 40, op: "SCMP_CMP_GT" }],
      },
    ],
  };
}

Deno.test("validateSeccomp() accepts every action, operator and flag OCI defines", () => {
  validateSeccomp(valid());
  validateSeccomp({ defaultAction: "SCMP_ACT_ALLOW" });
  validateSeccomp({
    defaultAction: "SCMP_ACT_ALLOW",
    listenerPath: "/run/agent.sock",
    flags: ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
    syscalls: [{ names: ["mkdir"], action: "SCMP_ACT_NOTIFY" }],
  });
});

Deno.test("validateSeccomp() rejects bad input with InvalidArgument naming the field", () => {
  const cases: [string, (s: LinuxSeccomp) => void, string][] = [
    [
      "unknown default action",
      (s) => s.defaultAction = "SCMP_ACT_MAYBE",
      '"SCMP_ACT_MAYBE" (linux.seccomp.defaultAction)',
    ],
    [
      "notify as default",
      (s) => s.defaultAction = "SCMP_ACT_NOTIFY",
      "cannot be the default action",
    ],
    ["errno for a non-errno default", (s) => {
      s.defaultAction = "SCMP_ACT_KILL";
    }, "linux.seccomp.defaultErrnoRet): SCMP_ACT_KILL takes no errno"],
    ["negative default errno", (s) => s.defaultErrnoRet = -1, "(linux.seccomp.defaultErrnoRet)"],
    [
      "unknown architecture",
      (s) => s.architectures!.push("SCMP_ARCH_Z80"),
      '"SCMP_ARCH_Z80" (linux.seccomp.architectures[4])',
    ],
    [
      "unknown flag",
      (s) => s.flags!.push("SECCOMP_FILTER_FLAG_FAST"),
      '"SECCOMP_FILTER_FLAG_FAST" (linux.seccomp.flags[3])',
    ],
    [
      "unknown rule action",
      (s) => s.syscalls![1]!.action = "SCMP_ACT_ERR",
      '"SCMP_ACT_ERR" (linux.seccomp.syscalls[1].action)',
    ],
    [
      "errno for allow",
      (s) => s.syscalls![0]!.errnoRet = 5,
      "(linux.seccomp.syscalls[0].errnoRet): SCMP_ACT_ALLOW takes no errno",
    ],
    [
      "errno too large",
      (s) => s.syscalls![1]!.errnoRet = 70000,
      "(linux.seccomp.syscalls[1].errnoRet)",
    ],
    ["empty names", (s) => s.syscalls![0]!.names = [], "(linux.seccomp.syscalls[0].names)"],
    [
      "empty name",
      (s) => s.syscalls![0]!.names = ["read", ""],
      "(linux.seccomp.syscalls[0].names[1])",
    ],
    [
      "unknown operator",
      (s) => s.syscalls![8]!.args![2]!.op = "SCMP_CMP_ABOUT",
      '"SCMP_CMP_ABOUT" (linux.seccomp.syscalls[8].args[2].op)',
    ],
    [
      "argument index 6",
      (s) => s.syscalls![9]!.args![0]!.index = 6,
      "(linux.seccomp.syscalls[9].args[0].index)",
    ],
    [
      "negative value",
      (s) => s.syscalls![9]!.args![0]!.value = -1,
      "(linux.seccomp.syscalls[9].args[0].value)",
    ],
    [
      "imprecise value",
      (s) => s.syscalls![9]!.args![0]!.value = 2 ** 60,
      "(linux.seccomp.syscalls[9].args[0].value)",
    ],
    [
      "fractional valueTwo",
      (s) => s.syscalls![8]!.args![5]!.valueTwo = 0.5,
      "(linux.seccomp.syscalls[8].args[5].valueTwo)",
    ],
    [
      "listener without notify",
      (s) => s.listenerPath = "/run/agent.sock",
      "no syscall uses SCMP_ACT_NOTIFY",
    ],
    [
      "notify without listener",
      (s) => s.syscalls![0]!.action = "SCMP_ACT_NOTIFY",
      "a listener must be named",
    ],
    [
      "killable wait without notify",
      (s) => s.flags = ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
      "needs a syscall that uses SCMP_ACT_NOTIFY",
    ],
  ];
  for (const [what, mutate, expected] of cases) {
    const s = valid();
    mutate(s);
    const err = assertThrows(() => validateSeccomp(s), InvalidArgument);
    assertStringIncludes(err.message, expected, what);
    assertMatch(err.message, /^Invalid seccomp /, what);
  }
});

Deno.test("validateSeccomp() accepts 64-bit argument values given as bigints", () => {
  const s = valid();
  (s.syscalls![9]!.args![0] as { value: number | bigint }).value = 0xffff_ffff_ffff_ffffn;
  validateSeccomp(s);
  (s.syscalls![9]!.args![0] as { value: number | bigint }).value = 1n << 64n;
  assertThrows(() => validateSeccomp(s), InvalidArgument, "must fit in 64 bits");
});

// --------------------------------------------------------------- translation

Deno.test({
  name: "compileSeccomp() rejects a syscall name libseccomp does not know",
  ignore: needsLib,
  fn() {
    const s: LinuxSeccomp = {
      defaultAction: "SCMP_ACT_ALLOW",
      syscalls: [{ names: ["mkdir", "not_a_syscall"], action: "SCMP_ACT_ERRNO" }],
    };
    const err = assertThrows(() => compileSeccomp(s), InvalidArgument);
    assertEquals(
      err.message,
      'Invalid seccomp syscall name: "not_a_syscall" (linux.seccomp.syscalls[0].names[1])',
    );
    // runc's and crun's habit, on request: skip it.
    const pfc = seccompPseudoCode(s, { unknownSyscalls: "ignore" });
    assertStringIncludes(pfc, 'filter for syscall "mkdir"');
  },
});

Deno.test({
  name: "compileSeccomp() skips names that exist only on architectures outside the filter",
  ignore: needsLib || Deno.build.arch !== "x86_64",
  fn() {
    const rules = [{ names: ["chown32", "arm_fadvise64_64", "mkdir"], action: "SCMP_ACT_ERRNO" }];
    const nativeOnly = seccompPseudoCode({ defaultAction: "SCMP_ACT_ALLOW", syscalls: rules });
    assert(!nativeOnly.includes("chown32"), nativeOnly);
    assert(!nativeOnly.includes("arm_fadvise64_64"), nativeOnly);
    assertStringIncludes(nativeOnly, 'filter for syscall "mkdir" (83)');
    const withX86 = seccompPseudoCode({
      defaultAction: "SCMP_ACT_ALLOW",
      architectures: ["SCMP_ARCH_X86"],
      syscalls: rules,
    });
    assertStringIncludes(withX86, 'filter for syscall "chown32" (212)');
    assert(!withX86.includes("arm_fadvise64_64"), withX86);
  },
});

Deno.test({
  name: "compileSeccomp() skips rules whose action is the default action",
  ignore: needsLib,
  fn() {
    const pfc = seccompPseudoCode({
      defaultAction: "SCMP_ACT_ERRNO",
      defaultErrnoRet: 13,
      syscalls: [
        { names: ["mkdir"], action: "SCMP_ACT_ERRNO", errnoRet: 13 },
        { names: ["rmdir"], action: "SCMP_ACT_ERRNO" },
      ],
    });
    assert(!pfc.includes('"mkdir"'), pfc);
    // ERRNO without errnoRet is EPERM, which differs from the default's 13.
    assertStringIncludes(pfc, 'filter for syscall "rmdir"');
    assertStringIncludes(pfc, "action ERRNO(1);");
    assertStringIncludes(pfc, "action ERRNO(13);");
  },
});

Deno.test({
  name:
    "compileSeccomp() splits conditions on one argument into separate rules and keeps others together",
  ignore: needsLib || Deno.build.arch !== "x86_64",
  fn() {
    const split = seccompPseudoCode({
      defaultAction: "SCMP_ACT_ALLOW",
      syscalls: [{
        names: ["personality"],
        action: "SCMP_ACT_ERRNO",
        args: [{ index: 0, value: 5, op: "SCMP_CMP_EQ" }, {
          index: 0,
          value: 6,
          op: "SCMP_CMP_EQ",
        }],
      }],
    });
    // Two sibling branches under the syscall: either value matches.
    assertMatch(
      split,
      /if \(\$a0\.lo32 == 6\)\n\s+action ERRNO\(1\);\n\s+if \(\$a0\.lo32 == 5\)\n\s+action ERRNO\(1\);/,
    );
    const together = seccompPseudoCode({
      defaultAction: "SCMP_ACT_ALLOW",
      syscalls: [{
        names: ["personality"],
        action: "SCMP_ACT_ERRNO",
        args: [{ index: 0, value: 5, op: "SCMP_CMP_EQ" }, {
          index: 1,
          value: 6,
          op: "SCMP_CMP_GT",
        }],
      }],
    });
    // Nested: both conditions must hold.
    assertMatch(together, /if \(\$a0\.lo32 == 5\)\n\s+if \(\$a1\.hi32 > 0\)/);
  },
});

Deno.test({
  name: "compileSeccomp() translates every action",
  ignore: needsLib,
  fn() {
    const pfc = seccompPseudoCode({
      defaultAction: "SCMP_ACT_ALLOW",
      listenerPath: "/run/agent.sock",
      syscalls: [
        { names: ["mkdir"], action: "SCMP_ACT_KILL" },
        { names: ["rmdir"], action: "SCMP_ACT_KILL_PROCESS" },
        { names: ["getppid"], action: "SCMP_ACT_TRAP" },
        { names: ["kill"], action: "SCMP_ACT_TRACE", errnoRet: 7 },
        { names: ["sync"], action: "SCMP_ACT_LOG" },
        { names: ["umask"], action: "SCMP_ACT_NOTIFY" },
        { names: ["chdir"], action: "SCMP_ACT_ERRNO", errnoRet: 38 },
      ],
    });
    const expected: [string, string][] = [
      ["mkdir", "KILL"],
      ["rmdir", "KILL_PROCESS"],
      ["getppid", "TRAP"],
      ["kill", "TRACE(7)"],
      ["sync", "LOG"],
      ["umask", "0x7fc00000"],
      ["chdir", "ERRNO(38)"],
    ];
    for (const [name, action] of expected) {
      assertMatch(
        pfc,
        new RegExp(`"${name}" \\(\\d+\\).*\\n.*\\n\\s+action ${action.replace(/[()]/g, "\\$&")};`),
        name,
      );
    }
  },
});

Deno.test({
  name:
    "compileSeccomp() maps flags to seccomp(2) flags and asks for a listener for SCMP_ACT_NOTIFY",
  ignore: needsLib,
  fn() {
    const plain = compileSeccomp({
      defaultAction: "SCMP_ACT_ALLOW",
      flags: ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
      syscalls: [{ names: ["mkdir"], action: "SCMP_ACT_ERRNO" }],
    });
    assertEquals(plain.flags, SECCOMP_FILTER_FLAG_LOG | SECCOMP_FILTER_FLAG_SPEC_ALLOW);
    assertEquals(plain.notify, false);
    const notify = compileSeccomp({
      defaultAction: "SCMP_ACT_ALLOW",
      listenerPath: "/run/agent.sock",
      flags: ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
      syscalls: [{ names: ["mkdir"], action: "SCMP_ACT_NOTIFY" }],
    });
    assertEquals(
      notify.flags,
      SECCOMP_FILTER_FLAG_TSYNC | SECCOMP_FILTER_FLAG_TSYNC_ESRCH |
        SECCOMP_FILTER_FLAG_NEW_LISTENER |
        SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
    );
    assertEquals(notify.notify, true);
  },
});

Deno.test({
  name: "compileSeccomp() builds for another architecture on request and refuses unknown ones",
  ignore: needsLib,
  fn() {
    const s: LinuxSeccomp = {
      defaultAction: "SCMP_ACT_ALLOW",
      syscalls: [{ names: ["mkdir", "mkdirat"], action: "SCMP_ACT_ERRNO" }],
    };
    const pfc = seccompPseudoCode(s, { arch: "SCMP_ARCH_AARCH64" });
    assertStringIncludes(pfc, "filter for arch aarch64");
    assertStringIncludes(pfc, 'filter for syscall "mkdirat" (34)');
    assert(!pfc.includes('"mkdir" ('), "aarch64 has no mkdir");
    assertThrows(
      () => compileSeccomp(s, { arch: "SCMP_ARCH_Z80" }),
      InvalidArgument,
      '"SCMP_ARCH_Z80" (options.arch)',
    );
    if (libseccomp().archResolveName("loongarch64") === undefined) {
      const err = assertThrows(
        () => compileSeccomp({ ...s, architectures: ["SCMP_ARCH_LOONGARCH64"] }),
        InvalidArgument,
        '"SCMP_ARCH_LOONGARCH64" (linux.seccomp.architectures[0]): libseccomp',
      );
      assertStringIncludes(err.message, "does not support it");
    }
  },
});

Deno.test({
  name: "compileSeccomp() reports what libseccomp refused, with the call and the errno",
  ignore: needsLib,
  fn() {
    // libseccomp cannot mix big-endian s390x with this machine's architecture.
    const err = assertThrows(
      () => compileSeccomp({ defaultAction: "SCMP_ACT_ALLOW", architectures: ["SCMP_ARCH_S390X"] }),
      InvalidArgument,
    );
    assertEquals(
      err.message,
      "Cannot add seccomp architecture SCMP_ARCH_S390X: seccomp_arch_add 0x80000016: EDOM",
    );
  },
});

Deno.test({
  name: "compileSeccomp() reuses the program of a profile it compiled before",
  ignore: needsLib,
  fn() {
    const profile = defaultSeccompProfile({ capabilities: DOCKER_CAPS });
    const first = compileSeccomp(profile);
    const second = compileSeccomp(structuredClone(profile));
    assert(first.bpf === second.bpf, "same program");
    first.release();
    // In a child, so that a regression cannot confine the test runner.
    const pid = sys.fork();
    if (pid === 0) {
      let code = 1;
      try {
        first.load();
      } catch (err) {
        code = err instanceof Error && err.message.includes("after release") ? 0 : 2;
      }
      sys.exit(code);
    }
    assertEquals(exitCodeOf(sys.waitpid(pid, 0).status), 0, "load() after release() throws");
    const other = compileSeccomp({ ...profile, defaultErrnoRet: 95 });
    assert(other.bpf !== first.bpf, "a different profile compiles anew");
  },
});

// ---------------------------------------------------------------- ENOSYS stub

/** Runs a stub for one syscall: where it sends the call. */
function runStub(stub: Uint8Array, arch: number, nr: number): string {
  const v = new DataView(stub.buffer, stub.byteOffset, stub.byteLength);
  const count = stub.length / 8;
  let pc = 0, a = 0;
  for (let steps = 0; steps < 1000 && pc < count; steps++) {
    const o = pc * 8;
    const [code, jt, jf, k] = [
      v.getUint16(o, true),
      v.getUint8(o + 2),
      v.getUint8(o + 3),
      v.getUint32(o + 4, true),
    ];
    if (code === 0x20) a = k === 0 ? nr >>> 0 : arch >>> 0;
    else if (code === 0x15) pc += a === k ? jt : jf;
    else if (code === 0x25) pc += a > k ? jt : jf;
    else if (code === 0x45) pc += (a & k) !== 0 ? jt : jf;
    else if (code === 0x05) pc += k;
    else if (code === 0x06) return k === (0x00050000 | ENOSYS) ? "ENOSYS" : `ret ${k}`;
    else throw new Error(`unexpected opcode ${code}`);
    pc++;
  }
  assertEquals(pc, count, "falls through to the end of the stub");
  return "filter";
}

Deno.test("enosysStub() answers syscalls above the profile's newest with ENOSYS, per architecture", () => {
  const stub = enosysStub([
    { arch: AUDIT_ARCH_X86_64, maxSyscall: 456 },
    { arch: AUDIT_ARCH_I386, maxSyscall: 450 },
    { arch: 0x4000003e, /* x32 */ maxSyscall: X32_SYSCALL_BIT | 440 },
  ]);
  assertEquals(runStub(stub, AUDIT_ARCH_X86_64, 0), "filter");
  assertEquals(runStub(stub, AUDIT_ARCH_X86_64, 456), "filter");
  assertEquals(runStub(stub, AUDIT_ARCH_X86_64, 457), "ENOSYS");
  assertEquals(runStub(stub, AUDIT_ARCH_X86_64, 0xffffffff), "ENOSYS");
  assertEquals(runStub(stub, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | 440), "filter");
  assertEquals(runStub(stub, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | 441), "ENOSYS");
  assertEquals(runStub(stub, AUDIT_ARCH_I386, 450), "filter");
  assertEquals(runStub(stub, AUDIT_ARCH_I386, 451), "ENOSYS");
  // Architectures the stub does not know are the filter's business.
  assertEquals(runStub(stub, 0xc00000b7, 9999), "filter");
});

Deno.test("enosysStub() leaves x32 calls to the filter when x32 is not in it, and handles s390x's syscall 0", () => {
  const x86 = enosysStub([{ arch: AUDIT_ARCH_X86_64, maxSyscall: 300 }]);
  assertEquals(runStub(x86, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | 999), "filter");
  assertEquals(runStub(x86, AUDIT_ARCH_X86_64, 301), "ENOSYS");
  const s390x = enosysStub([{ arch: AUDIT_ARCH_S390X, maxSyscall: 400 }]);
  assertEquals(runStub(s390x, AUDIT_ARCH_S390X, 0), "ENOSYS");
  assertEquals(runStub(s390x, AUDIT_ARCH_S390X, 1), "filter");
  assertEquals(runStub(s390x, AUDIT_ARCH_S390X, 401), "ENOSYS");
  assertEquals(enosysStub([]).length, 0);
});

// --------------------------------------------------------------- real kernel

interface ChildResult {
  status: number;
  output: string;
}

/**
 * Forks; the child redirects stdout and stderr to a file, turns off core
 * dumps, loads `filter` and runs `body` (synchronous code only), exiting with
 * its result. A thrown error exits 120 (121 for a SyscallError from load).
 */
function inChild(filter: SeccompFilter, body: () => number): ChildResult {
  const dir = Deno.makeTempDirSync({ prefix: "tug-seccomp-" });
  const out = `${dir}/out`;
  try {
    const pid = sys.fork();
    if (pid === 0) {
      let code = 120;
      try {
        const fd = sys.open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644);
        sys.dup2(fd, 1);
        sys.dup2(fd, 2);
        sys.setrlimit(RLIMITS.RLIMIT_CORE!, 0n, 0n);
        sys.prctl(PR_SET_DUMPABLE, 0);
        try {
          filter.load();
        } catch (err) {
          sys.exit(err instanceof SyscallError ? 121 : 120);
        }
        code = body();
      } catch {
        code = 120;
      }
      sys.exit(code);
    }
    const { status } = sys.waitpid(pid, 0);
    return { status, output: Deno.readTextFileSync(out) };
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

/** Runs `busybox sh -c script` under `filter`. */
function busybox(filter: SeccompFilter, script: string): ChildResult {
  return inChild(filter, () => sys.execve(BUSYBOX, ["busybox", "sh", "-c", script], ["PATH=/bin"]));
}

/** The errno a failing libc call left, or 0 when `result` is not -1. */
function errnoOf(result: number | bigint): number {
  return Number(result) === -1 ? errno() : 0;
}

Deno.test({
  name: "A denied syscall fails with the configured errno (busybox mkdir sees ENOSYS)",
  ignore: needsBusybox,
  fn() {
    const filter = compileSeccomp({
      defaultAction: "SCMP_ACT_ALLOW",
      syscalls: [{ names: ["mkdir", "mkdirat"], action: "SCMP_ACT_ERRNO", errnoRet: ENOSYS }],
    });
    const dir = Deno.makeTempDirSync({ prefix: "tug-seccomp-" });
    try {
      const r = busybox(filter, `busybox mkdir ${dir}/x; echo "status $?"`);
      assertStringIncludes(r.output, "Function not implemented");
      assertStringIncludes(r.output, "status 1");
      assertEquals(exitCodeOf(r.status), 0);
      assertThrows(() => Deno.statSync(`${dir}/x`), Deno.errors.NotFound);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "Argument conditions decide: only personality(0xffffffff) is allowed",
  ignore: needsKernel,
  fn() {
    const filter = compileSeccomp({
      defaultAction: "SCMP_ACT_ALLOW",
      syscalls: [{
        names: ["personality"],
        action: "SCMP_ACT_ERRNO",
        args: [{ index: 0, value: 0xffffffff, op: "SCMP_CMP_NE" }],
      }],
    });
    const r = inChild(filter, () => {
      const query = extra.personality(0xffffffffn);
      if (query < 0) return 10 + errnoOf(query);
      const set = extra.personality(0x0008n /* PER_LINUX32 */);
      return set === -1 && errno() === EPERM ? 0 : 2;
    });
    assertEquals(exitCodeOf(r.status), 0, r.output);
  },
});

Deno.test({
  name: "Conditions on the same argument match either value in the kernel",
  ignore: needsKernel,
  fn() {
    const filter = compileSeccomp({
      defaultAction: "SCMP_ACT_ALLOW",
      syscalls: [{
        names: ["personality"],
        action: "SCMP_ACT_ERRNO",
        errnoRet: EXDEV,
        args: [{ index: 0, value: 0x0008, op: "SCMP_CMP_EQ" }, {
          index: 0,
          value: 0x20000,
          op: "SCMP_CMP_EQ",
        }],
      }],
    });
    const r = inChild(filter, () => {
      const a = errnoOf(extra.personality(0x0008n));
      const b = errnoOf(extra.personality(0x20000n));
      const query = extra.personality(0xffffffffn);
      return a === EXDEV && b === EXDEV && query >= 0 ? 0 : 1;
    });
    assertEquals(exitCodeOf(r.status), 0, r.output);
  },
});

Deno.test({
  name: "SCMP_ACT_KILL_PROCESS and SCMP_ACT_KILL end the process with SIGSYS",
  ignore: needsKernel,
  fn() {
    for (const action of ["SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL"]) {
      const filter = compileSeccomp({
        defaultAction: "SCMP_ACT_ALLOW",
        syscalls: [{ names: ["getppid"], action }],
      });
      const getppid = libseccomp().syscallResolveName("getppid");
      const r = inChild(filter, () => {
        extra.syscall(BigInt(getppid), 0n, 0n, 0n);
        return 0;
      });
      assertEquals(signalOf(r.status), SIGNALS.SIGSYS!, `${action}: status ${r.status}`);
    }
  },
});

Deno.test({
  name: "The default profile runs busybox and denies unshare and mount without CAP_SYS_ADMIN",
  ignore: needsBusybox,
  fn() {
    const filter = compileSeccomp(defaultSeccompProfile({ capabilities: DOCKER_CAPS }));
    const r = busybox(
      filter,
      "echo ok; busybox unshare -n true; echo unshare $?; busybox mount -t tmpfs none /nonexistent-tug; echo mount $?; busybox linux32 true; echo linux32 $?",
    );
    assertEquals(exitCodeOf(r.status), 0, r.output);
    assertStringIncludes(r.output, "ok\n");
    assertMatch(r.output, /unshare.*Operation not permitted/);
    assertStringIncludes(r.output, "unshare 1");
    // busybox words EPERM from mount(2) so; without the filter it would be ENOENT.
    assertStringIncludes(r.output, "mount: permission denied");
    assertMatch(r.output, /mount [1-9]/);
    assertStringIncludes(r.output, "linux32 0");
  },
});

Deno.test({
  name: "The default profile with CAP_SYS_ADMIN allows unshare",
  ignore: needsBusybox,
  fn() {
    const filter = compileSeccomp(
      defaultSeccompProfile({ capabilities: [...DOCKER_CAPS, "CAP_SYS_ADMIN"] }),
    );
    const r = busybox(filter, "busybox unshare -n true; echo unshare $?");
    assertStringIncludes(r.output, "unshare 0");
  },
});

Deno.test({
  name: "defaultErrnoRet is what denied syscalls return",
  ignore: needsBusybox,
  fn() {
    const profile = {
      ...defaultSeccompProfile({ capabilities: DOCKER_CAPS }),
      defaultErrnoRet: 95,
    };
    const r = busybox(compileSeccomp(profile), "busybox unshare -n true; echo unshare $?");
    assertMatch(r.output, /unshare.*Not supported|unshare.*Operation not supported/);
    assertStringIncludes(r.output, "unshare 1");
  },
});

Deno.test({
  name:
    "The default profile answers syscalls newer than it knows with ENOSYS and older unlisted ones with EPERM",
  ignore: needsKernel,
  fn() {
    const filter = compileSeccomp(defaultSeccompProfile({ capabilities: DOCKER_CAPS }));
    const lib = libseccomp();
    const syslog = lib.syscallResolveName("syslog");
    const clone3 = lib.syscallResolveName("clone3");
    const r = inChild(filter, () => {
      const future = errnoOf(extra.syscall(999n, 0n, 0n, 0n));
      const old = errnoOf(
        extra.syscall(BigInt(syslog), 10n, /* SYSLOG_ACTION_SIZE_BUFFER */ 0n, 0n),
      );
      const c3 = errnoOf(extra.syscall(BigInt(clone3), 0n, 0n, 0n));
      return future === ENOSYS && old === EPERM && c3 === ENOSYS
        ? 0
        : 1 + (future === ENOSYS ? 0 : 2) + (old === EPERM ? 0 : 4);
    });
    assertEquals(exitCodeOf(r.status), 0, r.output);
  },
});

Deno.test({
  name: "An SCMP_ACT_NOTIFY rule hands the call to the process holding the listener",
  ignore: needsKernel,
  fn() {
    const filter = compileSeccomp({
      defaultAction: "SCMP_ACT_ALLOW",
      listenerPath: "/run/tug-test-agent.sock",
      syscalls: [{ names: ["mkdir", "mkdirat"], action: "SCMP_ACT_NOTIFY" }],
    });
    const dir = Deno.makeTempDirSync({ prefix: "tug-seccomp-" });
    const [parentEnd, childEnd] = sys.socketpair(SOCK_STREAM);
    let childEndOpen = true;
    let pid = 0;
    try {
      pid = sys.fork();
      if (pid === 0) {
        let code = 120;
        try {
          sys.close(parentEnd);
          sys.setrlimit(RLIMITS.RLIMIT_CORE!, 0n, 0n);
          const listener = filter.load();
          sys.sendFds(childEnd, new TextEncoder().encode("fd"), [listener!]);
          sys.mkdir(`${dir}/notified`, 0o755);
          code = 0;
        } catch (err) {
          code = err instanceof SyscallError ? err.errno : 121;
        }
        sys.exit(code);
      }
      sys.close(childEnd);
      childEndOpen = false;
      const { fds } = sys.recvFds(parentEnd, 16);
      assertEquals(fds.length, 1, "the child sent its listener");
      const listener = fds[0]!;
      try {
        // Wait (bounded) for the notification, then answer EXDEV.
        const pollfd = new Uint8Array(8);
        new DataView(pollfd.buffer).setInt32(0, listener, true);
        new DataView(pollfd.buffer).setInt16(4, 1, /* POLLIN */ true);
        assertEquals(extra.poll(pollfd, 1n, 30_000), 1, "a notification arrived");
        const notif = new Uint8Array(80);
        sys.ioctl(listener, 0xc0502100, /* SECCOMP_IOCTL_NOTIF_RECV */ notif);
        const nv = new DataView(notif.buffer);
        assertEquals(nv.getUint32(8, true), pid, "from the child");
        const resp = new Uint8Array(24);
        const rv = new DataView(resp.buffer);
        rv.setBigUint64(0, nv.getBigUint64(0, true), true);
        rv.setInt32(16, -EXDEV, true);
        sys.ioctl(listener, 0xc0182101, /* SECCOMP_IOCTL_NOTIF_SEND */ resp);
      } finally {
        sys.close(listener);
      }
      const { status } = sys.waitpid(pid, 0);
      pid = 0;
      assertEquals(exitCodeOf(status), EXDEV);
      assertThrows(() => Deno.statSync(`${dir}/notified`), Deno.errors.NotFound);
    } finally {
      if (pid > 0) {
        sys.kill(pid, SIGNALS.SIGKILL!);
        sys.waitpid(pid, 0);
      }
      sys.close(parentEnd);
      if (childEndOpen) sys.close(childEnd);
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
