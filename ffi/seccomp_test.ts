import { Unavailable } from "../errors.ts";
import { requires } from "../tests/harness.ts";
import { assert, assertEquals, assertStringIncludes, assertThrows } from "../tests/assert.ts";
import {
  O_CLOEXEC,
  O_RDONLY,
  PR_SET_DUMPABLE,
  RLIMITS,
  SECCOMP_FILTER_FLAG_NEW_LISTENER,
} from "./constants.ts";
import { libcSyscall } from "./libc.ts";
import {
  bpfProgram,
  encodeArgCmps,
  libseccomp,
  loadLibseccomp,
  NR_SCMP_ERROR,
  SCMP_ACT_ALLOW,
  SCMP_ACT_NOTIFY,
  SCMP_ARG_CMP_SIZE,
  SCMP_CMP_EQ,
  SCMP_CMP_MASKED_EQ,
  SCMP_FLTATR_CTL_NNP,
  scmpActErrno,
  seccompSetModeFilter,
} from "./seccomp.ts";
import { exitCodeOf, SyscallError } from "./syscall.ts";

const X86 = 0x40000003;
const X86_64 = 0xc000003e;
const needs = requires("libseccomp");
const needsRoot = requires("root", "libseccomp");
const sys = libcSyscall();

/** Forks, runs `body` in the child (synchronously) and returns its exit code. */
function inChild(body: () => number): number {
  const pid = sys.fork();
  if (pid === 0) {
    let code = 120;
    try {
      sys.setrlimit(RLIMITS.RLIMIT_CORE!, 0n, 0n);
      sys.prctl(PR_SET_DUMPABLE, 0);
      code = body();
    } catch (err) {
      code = err instanceof SyscallError ? 100 + Math.min(err.errno, 19) : 121;
    }
    sys.exit(code);
  }
  return exitCodeOf(sys.waitpid(pid, 0).status);
}

Deno.test("loadLibseccomp() throws Unavailable when the library cannot be loaded", () => {
  const err = assertThrows(() => loadLibseccomp("libseccomp-missing.so.9"), Unavailable);
  assertStringIncludes(
    err.message,
    "seccomp was requested but libseccomp-missing.so.9 could not be loaded",
  );
});

Deno.test({
  name: "libseccomp() reports version 2.5 or later and a usable API level",
  ignore: needs,
  fn() {
    const lib = libseccomp();
    const v = lib.version();
    assert(v.major > 2 || (v.major === 2 && v.minor >= 5), `libseccomp ${v.major}.${v.minor}`);
    assert(lib.apiLevel() >= 3, `API level ${lib.apiLevel()}`);
    assertEquals(lib.archResolveName("x86_64"), X86_64);
    assertEquals(lib.archResolveName("not-an-arch"), undefined);
  },
});

Deno.test({
  name: "libseccomp resolves syscall names natively and per architecture",
  ignore: needs,
  fn() {
    const lib = libseccomp();
    assertEquals(lib.syscallResolveName("not_a_syscall"), NR_SCMP_ERROR);
    assertEquals(lib.syscallResolveNameArch(X86_64, "mkdir"), 83);
    assertEquals(lib.syscallResolveNameArch(X86, "mkdir"), 39);
    // chown32 exists on i386 only: a pseudo number below -1 elsewhere.
    assert(lib.syscallResolveNameArch(X86_64, "chown32") < NR_SCMP_ERROR);
    assertEquals(lib.syscallResolveNameArch(X86, "chown32"), 212);
  },
});

Deno.test("encodeArgCmps() lays out struct scmp_arg_cmp as 24 bytes each", () => {
  const buf = encodeArgCmps([
    { arg: 1, op: SCMP_CMP_EQ, datumA: 7n, datumB: 0n },
    { arg: 5, op: SCMP_CMP_MASKED_EQ, datumA: 0xffff_ffff_0000_0001n, datumB: 2n },
  ]);
  assertEquals(SCMP_ARG_CMP_SIZE, 24);
  assertEquals(buf.length, 48);
  const v = new DataView(buf.buffer);
  assertEquals([
    v.getUint32(0, true),
    v.getUint32(4, true),
    v.getBigUint64(8, true),
    v.getBigUint64(16, true),
  ], [
    1,
    SCMP_CMP_EQ,
    7n,
    0n,
  ]);
  assertEquals([
    v.getUint32(24, true),
    v.getUint32(28, true),
    v.getBigUint64(32, true),
    v.getBigUint64(40, true),
  ], [
    5,
    SCMP_CMP_MASKED_EQ,
    0xffff_ffff_0000_0001n,
    2n,
  ]);
});

Deno.test({
  name: "SeccompContext errors name the libseccomp function, the syscall and the errno",
  ignore: needs,
  fn() {
    const lib = libseccomp();
    const ctx = lib.init(scmpActErrno(1));
    try {
      const personality = lib.syscallResolveName("personality");
      const twoOnOneArg = [
        { arg: 0, op: SCMP_CMP_EQ, datumA: 1n, datumB: 0n },
        { arg: 0, op: SCMP_CMP_EQ, datumA: 2n, datumB: 0n },
      ];
      const err = assertThrows(
        () => ctx.ruleAdd(SCMP_ACT_ALLOW, personality, twoOnOneArg, '"personality"'),
        SyscallError,
      );
      assertEquals(err.message, 'seccomp_rule_add_array "personality": EINVAL');
      // A rule with the default action is refused.
      const sameAsDefault = assertThrows(() =>
        ctx.ruleAdd(scmpActErrno(1), personality, [], '"personality"')
      );
      assertStringIncludes(sameAsDefault.message, "EACCES");
    } finally {
      ctx.release();
    }
  },
});

Deno.test({
  name: "SeccompContext sets attributes, exports BPF and PFC, and refuses use after release",
  ignore: needs,
  fn() {
    const lib = libseccomp();
    const ctx = lib.init(SCMP_ACT_ALLOW);
    ctx.attrSet(SCMP_FLTATR_CTL_NNP, 0);
    assertEquals(ctx.attrGet(SCMP_FLTATR_CTL_NNP), 0);
    ctx.archAdd(X86);
    ctx.archAdd(X86); // already there: not an error
    ctx.ruleAdd(scmpActErrno(38), lib.syscallResolveName("mkdir"), [], '"mkdir"');
    const bpf = ctx.exportBpf();
    assert(bpf.length > 0 && bpf.length % 8 === 0, `BPF of ${bpf.length} bytes`);
    const pfc = ctx.exportPfc();
    assertStringIncludes(pfc, 'filter for syscall "mkdir" (83)');
    assertStringIncludes(pfc, "filter for arch x86 (1073741827)");
    assertStringIncludes(pfc, "ERRNO(38)");
    ctx.release();
    ctx.release();
    assertThrows(() => ctx.exportBpf(), Error, "after release");
  },
});

Deno.test({
  name: "seccompSetModeFilter() installs an exported program in a forked child",
  ignore: needsRoot,
  fn() {
    const lib = libseccomp();
    const ctx = lib.init(SCMP_ACT_ALLOW);
    ctx.attrSet(SCMP_FLTATR_CTL_NNP, 0);
    // sys.mkdir makes mkdirat (the only form aarch64 has); deny both forms.
    ctx.ruleAdd(scmpActErrno(13), lib.syscallResolveName("mkdir"), [], '"mkdir"');
    ctx.ruleAdd(scmpActErrno(13), lib.syscallResolveName("mkdirat"), [], '"mkdirat"');
    const program = bpfProgram(ctx.exportBpf());
    ctx.release();
    const dir = Deno.makeTempDirSync({ prefix: "tug-seccomp-" });
    try {
      const code = inChild(() => {
        assertEquals(seccompSetModeFilter(lib, program, 0), 0);
        try {
          sys.mkdir(`${dir}/denied`, 0o755);
          return 1;
        } catch (err) {
          return err instanceof SyscallError && err.errno === 13 ? 0 : 2;
        }
      });
      assertEquals(code, 0);
      assertThrows(() => Deno.statSync(`${dir}/denied`), Deno.errors.NotFound);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "seccompSetModeFilter() returns a listener fd for SCMP_ACT_NOTIFY rules",
  ignore: needsRoot,
  fn() {
    const lib = libseccomp();
    const ctx = lib.init(SCMP_ACT_ALLOW);
    ctx.ruleAdd(SCMP_ACT_NOTIFY, lib.syscallResolveName("mkdir"), [], '"mkdir"');
    const program = bpfProgram(ctx.exportBpf());
    ctx.release();
    const code = inChild(() => {
      const fd = seccompSetModeFilter(lib, program, SECCOMP_FILTER_FLAG_NEW_LISTENER);
      // The listener is a real fd of this process.
      const stat = sys.fstat(fd);
      return fd > 2 && stat.ino > 0n ? 0 : 1;
    });
    assertEquals(code, 0);
  },
});

Deno.test({
  name: "SeccompContext.load() installs the filter itself through libseccomp",
  ignore: needsRoot,
  fn() {
    const lib = libseccomp();
    const ctx = lib.init(SCMP_ACT_ALLOW);
    ctx.attrSet(SCMP_FLTATR_CTL_NNP, 0);
    ctx.ruleAdd(scmpActErrno(2), lib.syscallResolveName("openat"), [], '"openat"');
    try {
      const code = inChild(() => {
        ctx.load();
        try {
          sys.open("/proc/self/status", O_RDONLY | O_CLOEXEC);
          return 1;
        } catch (err) {
          return err instanceof SyscallError && err.errno === 2 ? 0 : 2;
        }
      });
      assertEquals(code, 0);
    } finally {
      ctx.release();
    }
  },
});
