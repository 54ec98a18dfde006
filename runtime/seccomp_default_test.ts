import { InvalidArgument } from "../errors.ts";
import { libseccomp, NR_SCMP_ERROR } from "../ffi/seccomp.ts";
import { assert, assertEquals, assertThrows } from "../tests/assert.ts";
import { requires } from "../tests/harness.ts";
import { compileSeccomp, validateSeccomp } from "./seccomp.ts";
import { DEFAULT_SECCOMP_PROFILE, defaultSeccompProfile } from "./seccomp_default.ts";
import type { LinuxSeccomp, LinuxSyscall } from "./spec.ts";

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
const CLONE_NAMESPACE_FLAGS = 0x7e020000;

/** The rules that name `name`. */
function rulesFor(p: LinuxSeccomp, name: string): LinuxSyscall[] {
  return (p.syscalls ?? []).filter((s) => s.names.includes(name));
}

/** True when `name` is allowed without conditions. */
function allowed(p: LinuxSeccomp, name: string): boolean {
  return rulesFor(p, name).some((s) => s.action === "SCMP_ACT_ALLOW" && s.args === undefined);
}

Deno.test("defaultSeccompProfile() denies by default with EPERM and allows the common calls", () => {
  const p = defaultSeccompProfile({ capabilities: DOCKER_CAPS, arch: "amd64", kernel: "6.1.0" });
  assertEquals(p.defaultAction, "SCMP_ACT_ERRNO");
  assertEquals(p.defaultErrnoRet, 1);
  for (
    const name of [
      "read",
      "write",
      "openat",
      "execve",
      "mmap",
      "futex",
      "fchmodat2",
      "clock_gettime",
      "exit_group",
    ]
  ) {
    assert(allowed(p, name), name);
  }
  for (
    const name of [
      "mount",
      "unshare",
      "setns",
      "reboot",
      "kexec_load",
      "init_module",
      "io_uring_setup",
      "bpf",
    ]
  ) {
    assert(!allowed(p, name), name);
  }
  // socket: any family but AF_VSOCK.
  assertEquals(rulesFor(p, "socket"), [{
    names: ["socket"],
    action: "SCMP_ACT_ALLOW",
    args: [{ index: 0, value: 40, op: "SCMP_CMP_NE" }],
  }]);
  // personality: five exact personas.
  assertEquals(
    rulesFor(p, "personality").map((r) => r.args![0]!.value),
    [0, 8, 0x20000, 0x20008, 0xffffffff],
  );
  validateSeccomp(p);
});

Deno.test("defaultSeccompProfile() without CAP_SYS_ADMIN allows clone only without namespace flags", () => {
  const p = defaultSeccompProfile({ capabilities: DOCKER_CAPS, arch: "amd64", kernel: "6.1" });
  assertEquals(rulesFor(p, "clone"), [{
    names: ["clone"],
    action: "SCMP_ACT_ALLOW",
    args: [{ index: 0, value: CLONE_NAMESPACE_FLAGS, op: "SCMP_CMP_MASKED_EQ" }],
  }]);
  assertEquals(rulesFor(p, "clone3"), [{
    names: ["clone3"],
    action: "SCMP_ACT_ERRNO",
    errnoRet: 38,
  }]);
});

Deno.test("defaultSeccompProfile() with CAP_SYS_ADMIN adds mount, unshare, setns and unconditional clone", () => {
  const p = defaultSeccompProfile({
    capabilities: [...DOCKER_CAPS, "CAP_SYS_ADMIN"],
    arch: "amd64",
    kernel: "6.1",
  });
  for (
    const name of [
      "mount",
      "umount2",
      "unshare",
      "setns",
      "clone",
      "clone3",
      "sethostname",
      "fsopen",
      "bpf",
    ]
  ) {
    assert(allowed(p, name), name);
  }
  // Neither the masked clone rule nor the clone3 ENOSYS rule remains.
  assertEquals(rulesFor(p, "clone").length, 1);
  assertEquals(rulesFor(p, "clone3").length, 1);
});

Deno.test("defaultSeccompProfile() maps capabilities to their syscalls, with or without the CAP_ prefix", () => {
  const none = defaultSeccompProfile({ capabilities: [], arch: "amd64", kernel: "6.1" });
  const some = defaultSeccompProfile({
    capabilities: [
      "sys_ptrace",
      "SYS_TIME",
      "CAP_SYS_NICE",
      "CAP_BPF",
      "CAP_SYSLOG",
      "CAP_SYS_BOOT",
    ],
    arch: "amd64",
    kernel: "6.1",
  });
  for (
    const name of [
      "ptrace",
      "kcmp",
      "pidfd_getfd",
      "settimeofday",
      "clock_settime",
      "mbind",
      "bpf",
      "syslog",
      "reboot",
    ]
  ) {
    assert(allowed(some, name), name);
    if (name !== "ptrace") assert(!allowed(none, name), `${name} without capabilities`);
  }
  assert(!allowed(some, "perf_event_open"), "needs CAP_PERFMON");
});

Deno.test("defaultSeccompProfile() picks architectures and arch-specific calls for x86_64", () => {
  for (const arch of ["amd64", "x86_64"]) {
    const p = defaultSeccompProfile({ capabilities: DOCKER_CAPS, arch, kernel: "6.1" });
    assertEquals(p.architectures, ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]);
    assert(allowed(p, "arch_prctl"), "arch_prctl");
    assert(allowed(p, "modify_ldt"), "modify_ldt");
    assert(!allowed(p, "set_tls"), "set_tls is for arm");
  }
});

Deno.test("defaultSeccompProfile() picks architectures and arch-specific calls for arm64 and s390x", () => {
  const arm = defaultSeccompProfile({ capabilities: DOCKER_CAPS, arch: "aarch64", kernel: "6.1" });
  assertEquals(arm.architectures, ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]);
  assert(allowed(arm, "set_tls") && allowed(arm, "arm_fadvise64_64"), "arm calls");
  assert(!allowed(arm, "arch_prctl"), "arch_prctl is for x86");
  const s390x = defaultSeccompProfile({ capabilities: DOCKER_CAPS, arch: "s390x", kernel: "6.1" });
  assertEquals(s390x.architectures, ["SCMP_ARCH_S390X", "SCMP_ARCH_S390"]);
  // s390 passes clone's flags second.
  assertEquals(rulesFor(s390x, "clone").map((r) => r.args![0]!.index), [1]);
  const ppc = defaultSeccompProfile({ capabilities: DOCKER_CAPS, arch: "ppc64le", kernel: "6.1" });
  assertEquals(ppc.architectures, undefined);
  assert(allowed(ppc, "swapcontext"), "swapcontext");
});

Deno.test("defaultSeccompProfile() allows ptrace to everyone only from kernel 4.8", () => {
  const old = defaultSeccompProfile({
    capabilities: DOCKER_CAPS,
    arch: "amd64",
    kernel: "4.4.0-210-generic",
  });
  const recent = defaultSeccompProfile({
    capabilities: DOCKER_CAPS,
    arch: "amd64",
    kernel: "4.8.0",
  });
  assert(!allowed(old, "ptrace"));
  assert(allowed(recent, "ptrace"));
  assert(
    allowed(defaultSeccompProfile({ capabilities: DOCKER_CAPS }), "ptrace"),
    "on this machine",
  );
});

Deno.test("defaultSeccompProfile() rejects unknown architectures and kernel versions", () => {
  assertThrows(
    () => defaultSeccompProfile({ capabilities: [], arch: "z80" }),
    InvalidArgument,
    'unknown architecture "z80"',
  );
  assertThrows(
    () => defaultSeccompProfile({ capabilities: [], kernel: "latest" }),
    InvalidArgument,
    'bad kernel version "latest"',
  );
});

Deno.test("defaultSeccompProfile() returns fresh objects each time", () => {
  const a = defaultSeccompProfile({ capabilities: DOCKER_CAPS });
  a.syscalls![0]!.names.push("kexec_load");
  a.syscalls!.find((s) => s.args)!.args![0]!.value = 99;
  const b = defaultSeccompProfile({ capabilities: DOCKER_CAPS });
  assert(!b.syscalls![0]!.names.includes("kexec_load"));
  assert(!JSON.stringify(DEFAULT_SECCOMP_PROFILE).includes('"value":99'));
});

Deno.test({
  name: "Every syscall name in the default profile is known to this machine's libseccomp",
  ignore: requires("libseccomp"),
  fn() {
    const lib = libseccomp();
    const unknown = DEFAULT_SECCOMP_PROFILE.syscalls.flatMap((s) => s.names)
      .filter((name) => lib.syscallResolveName(name) === NR_SCMP_ERROR);
    assertEquals(unknown, []);
  },
});

Deno.test({
  name: "The default profile compiles for every capability set and architecture it knows",
  ignore: requires("libseccomp"),
  fn() {
    const native = defaultSeccompProfile({ capabilities: DOCKER_CAPS });
    assert(compileSeccomp(native).bpf.length > 0);
    for (
      const [arch, scmp] of [["arm64", "SCMP_ARCH_AARCH64"], ["s390x", "SCMP_ARCH_S390X"], [
        "riscv64",
        "SCMP_ARCH_RISCV64",
      ]]
    ) {
      for (const caps of [[], DOCKER_CAPS, [...DOCKER_CAPS, "CAP_SYS_ADMIN"]]) {
        const p = defaultSeccompProfile({ capabilities: caps, arch: arch!, kernel: "6.1" });
        assert(compileSeccomp(p, { arch: scmp }).bpf.length > 0, `${arch} ${caps.length}`);
      }
    }
  },
});
