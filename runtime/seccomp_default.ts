/**
 * tug's default seccomp profile: the effect of Docker's default profile,
 * resolved for a container's bounding capability set and the machine's
 * architecture into plain OCI `linux.seccomp`.
 *
 * The data lives in `seccomp_default.json` in Docker's on-disk format
 * (`archMap`, and `includes` / `excludes` per group). The daemon adds the
 * profile to the specs it writes; the runtime itself never adds one.
 *
 * @module
 */

import { InvalidArgument } from "../errors.ts";
import profile from "./seccomp_default.json" with { type: "json" };
import type { LinuxSeccomp, LinuxSeccompArg, LinuxSyscall } from "./spec.ts";

/** When a group of the profile applies (Docker's `includes` / `excludes`). */
export interface SeccompProfileFilter {
  /** Capabilities (`CAP_*`): includes needs all of them, excludes any one. */
  caps?: string[];
  /** Architectures in Go's names (`amd64`, `arm64`, `s390x`, …). */
  arches?: string[];
  /** Kernel version `major.minor`: includes needs at least it, excludes drops from it on. */
  minKernel?: string;
}

/** One group of syscalls in the Docker-style profile. */
export interface SeccompProfileSyscall {
  names: string[];
  action: string;
  errnoRet?: number;
  args?: LinuxSeccompArg[];
  includes?: SeccompProfileFilter;
  excludes?: SeccompProfileFilter;
  comment?: string;
}

/** A Docker-style seccomp profile, as stored in `seccomp_default.json`. */
export interface SeccompProfile {
  comment?: string;
  defaultAction: string;
  defaultErrnoRet?: number;
  archMap: { architecture: string; subArchitectures: string[] }[];
  syscalls: SeccompProfileSyscall[];
}

/** The profile data, as shipped. */
export const DEFAULT_SECCOMP_PROFILE: SeccompProfile = profile as SeccompProfile;

/** Options for {@link defaultSeccompProfile}. */
export interface DefaultSeccompOptions {
  /** The container's bounding capability set (`CAP_SYS_ADMIN` or `SYS_ADMIN`). */
  capabilities: string[];
  /**
   * The architecture to resolve for: Go's names (`amd64`, `arm64`, `arm`,
   * `386`, `s390x`, `ppc64le`, `riscv64`, `mips64`, `mips64le`, `loong64`)
   * or Deno's (`x86_64`, `aarch64`). Default: this machine's.
   */
  arch?: string;
  /** The kernel release to compare with `minKernel` (default: this machine's). */
  kernel?: string;
}

/** Go architecture names and the SCMP_ARCH_* each runs natively. */
const NATIVE_ARCH: Readonly<Record<string, string>> = {
  "386": "SCMP_ARCH_X86",
  amd64: "SCMP_ARCH_X86_64",
  arm: "SCMP_ARCH_ARM",
  arm64: "SCMP_ARCH_AARCH64",
  mips: "SCMP_ARCH_MIPS",
  mipsle: "SCMP_ARCH_MIPSEL",
  mips64: "SCMP_ARCH_MIPS64",
  mips64le: "SCMP_ARCH_MIPSEL64",
  ppc: "SCMP_ARCH_PPC",
  ppc64: "SCMP_ARCH_PPC64",
  ppc64le: "SCMP_ARCH_PPC64LE",
  s390: "SCMP_ARCH_S390",
  s390x: "SCMP_ARCH_S390X",
  riscv64: "SCMP_ARCH_RISCV64",
  loong64: "SCMP_ARCH_LOONGARCH64",
};

/** Deno's (and the kernel's) names for the architectures Deno runs on. */
const DENO_TO_GO: Readonly<Record<string, string>> = { x86_64: "amd64", aarch64: "arm64" };

function goArch(arch: string): string {
  const go = DENO_TO_GO[arch] ?? arch;
  if (!Object.hasOwn(NATIVE_ARCH, go)) {
    throw new InvalidArgument(
      `Cannot resolve the default seccomp profile: unknown architecture ${JSON.stringify(arch)}`,
    );
  }
  return go;
}

function capName(cap: string): string {
  const upper = cap.trim().toUpperCase();
  return upper.startsWith("CAP_") ? upper : `CAP_${upper}`;
}

/** `major.minor` of a kernel release such as `6.1.0-18-amd64`, as a comparable pair. */
function kernelVersion(release: string, what: string): [number, number] {
  const m = /^(\d+)\.(\d+)/.exec(release);
  if (m === null) {
    throw new InvalidArgument(
      `Cannot resolve the default seccomp profile: bad kernel version ${
        JSON.stringify(release)
      } in ${what}`,
    );
  }
  return [Number(m[1]), Number(m[2])];
}

function atLeast(have: [number, number], want: [number, number]): boolean {
  return have[0] !== want[0] ? have[0] > want[0] : have[1] >= want[1];
}

/**
 * Resolves a Docker-style profile for a bounding capability set and an
 * architecture, with Docker's rules: a group is dropped when `excludes`
 * matches (the architecture is listed, any listed capability is held, or the
 * kernel is at least `minKernel`), and kept only when `includes` matches
 * (the architecture is listed, every listed capability is held, the kernel
 * is at least `minKernel`). `architectures` becomes the `archMap` entry of
 * the native architecture with its sub-architectures.
 */
export function resolveSeccompProfile(
  source: SeccompProfile,
  options: DefaultSeccompOptions,
): LinuxSeccomp {
  const arch = goArch(options.arch ?? Deno.build.arch);
  const caps = new Set(options.capabilities.map(capName));
  const kernel = kernelVersion(options.kernel ?? Deno.osRelease(), "options.kernel");
  const native = NATIVE_ARCH[arch]!;

  const architectures: string[] = [];
  for (const entry of source.archMap) {
    if (entry.architecture === native) {
      architectures.push(entry.architecture, ...entry.subArchitectures);
    }
  }

  const syscalls: LinuxSyscall[] = [];
  source.syscalls.forEach((group, i) => {
    const ex = group.excludes;
    if (ex !== undefined) {
      if (ex.arches?.includes(arch)) return;
      if (ex.caps?.some((c) => caps.has(capName(c)))) return;
      if (
        ex.minKernel !== undefined &&
        atLeast(kernel, kernelVersion(ex.minKernel, `syscalls[${i}].excludes`))
      ) return;
    }
    const inc = group.includes;
    if (inc !== undefined) {
      if (inc.arches !== undefined && inc.arches.length > 0 && !inc.arches.includes(arch)) return;
      if (inc.caps !== undefined && !inc.caps.every((c) => caps.has(capName(c)))) return;
      if (
        inc.minKernel !== undefined &&
        !atLeast(kernel, kernelVersion(inc.minKernel, `syscalls[${i}].includes`))
      ) return;
    }
    const rule: LinuxSyscall = { names: [...group.names], action: group.action };
    if (group.errnoRet !== undefined) rule.errnoRet = group.errnoRet;
    if (group.args !== undefined && group.args.length > 0) {
      rule.args = group.args.map((a) => ({ ...a }));
    }
    syscalls.push(rule);
  });

  const result: LinuxSeccomp = { defaultAction: source.defaultAction, syscalls };
  if (source.defaultErrnoRet !== undefined) result.defaultErrnoRet = source.defaultErrnoRet;
  if (architectures.length > 0) result.architectures = architectures;
  return result;
}

/**
 * tug's default profile (Docker's, see `seccomp_default.json`) for a
 * container with `capabilities` as its bounding set, as OCI
 * `linux.seccomp`. Syscalls that need a capability (mount, unshare, … for
 * CAP_SYS_ADMIN; ptrace for CAP_SYS_PTRACE; …) are allowed only when the
 * set holds it.
 *
 * @example
 * ```ts
 * spec.linux.seccomp = defaultSeccompProfile({ capabilities: spec.process.capabilities.bounding });
 * ```
 */
export function defaultSeccompProfile(options: DefaultSeccompOptions): LinuxSeccomp {
  return resolveSeccompProfile(DEFAULT_SECCOMP_PROFILE, options);
}
