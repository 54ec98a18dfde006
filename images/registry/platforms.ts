/**
 * Platforms (`os/arch[/variant]`): parsing, normalisation and matching with
 * containerd's rules (containerd/platforms). `x86_64` is `amd64`, `aarch64`
 * is `arm64` (whose variant `v8` is the default and compares equal to none),
 * `arm` defaults to variant `v7`. A matcher for one platform also accepts the
 * platforms that machine can run, best first: amd64 also runs 386; arm/v7
 * also runs arm/v6 and arm/v5; arm64 also runs arm/v8 down to arm/v5.
 *
 * @module
 */

import { InvalidArgument } from "../../errors.ts";
import type { Platform } from "../types.ts";

/** Chooses among platforms: which ones match, and which of two is better. */
export interface PlatformMatcher {
  match(platform: Platform): boolean;
  /** True when `a` should be preferred over `b`. */
  less(a: Platform, b: Platform): boolean;
  /** What it matches, for messages (`linux/arm64`). */
  name?: string;
}

const KNOWN_OS = new Set([
  "aix",
  "android",
  "darwin",
  "dragonfly",
  "freebsd",
  "hurd",
  "illumos",
  "ios",
  "js",
  "linux",
  "nacl",
  "netbsd",
  "openbsd",
  "plan9",
  "solaris",
  "windows",
  "zos",
]);
const KNOWN_ARCH = new Set([
  "386",
  "amd64",
  "amd64p32",
  "arm",
  "armbe",
  "arm64",
  "arm64be",
  "ppc64",
  "ppc64le",
  "loong64",
  "mips",
  "mipsle",
  "mips64",
  "mips64le",
  "mips64p32",
  "mips64p32le",
  "ppc",
  "riscv",
  "riscv64",
  "s390",
  "s390x",
  "sparc",
  "sparc64",
  "wasm",
]);
const COMPONENT = /^[A-Za-z0-9_-]+$/;

function normalizeOS(os: string): string {
  const lower = os.toLowerCase();
  return lower === "macos" ? "darwin" : lower;
}

function normalizeArch(arch: string, variant: string): [string, string] {
  arch = arch.toLowerCase();
  variant = variant.toLowerCase();
  switch (arch) {
    case "i386":
      return ["386", ""];
    case "x86_64":
    case "x86-64":
    case "amd64":
      return ["amd64", variant === "v1" ? "" : variant];
    case "aarch64":
    case "arm64":
      return ["arm64", variant === "8" || variant === "v8" ? "" : variant];
    case "armhf":
      return ["arm", "v7"];
    case "armel":
      return ["arm", "v6"];
    case "arm":
      if (variant === "" || variant === "7") return ["arm", "v7"];
      if (variant === "5" || variant === "6" || variant === "8") return ["arm", `v${variant}`];
      return ["arm", variant];
  }
  return [arch, variant];
}

/** The canonical form of a platform (lowercase; `aarch64` → `arm64`; `arm` gets `v7`; arm64's `v8` dropped). */
export function normalizePlatform(p: Platform): Platform {
  const [architecture, variant] = normalizeArch(p.architecture ?? "", p.variant ?? "");
  const out: Platform = { os: normalizeOS(p.os ?? ""), architecture };
  if (variant) out.variant = variant;
  if (p["os.version"]) out["os.version"] = p["os.version"];
  if (p["os.features"]?.length) out["os.features"] = [...new Set(p["os.features"])].sort();
  return out;
}

/** The platform of this machine: `linux/amd64`, or `linux/arm64/v8` on 64-bit ARM. */
export function defaultPlatform(): Platform {
  switch (Deno.build.arch) {
    case "aarch64":
      return { os: "linux", architecture: "arm64", variant: "v8" };
    default:
      return { os: "linux", architecture: "amd64" };
  }
}

/**
 * Parses `os`, `arch`, `os/arch` or `os/arch/variant` (containerd's syntax
 * without OS versions); throws InvalidArgument naming the specifier.
 */
export function parsePlatform(specifier: string): Platform {
  const fail = (why: string) => new InvalidArgument(`parse platform "${specifier}" failed: ${why}`);
  if (specifier.includes("*")) throw fail("wildcards are not supported");
  const parts = specifier.split("/");
  if (parts.length > 3) throw fail("want os[/arch[/variant]]");
  for (const part of parts) {
    if (!COMPONENT.test(part)) {
      throw fail(`"${part}" is not a valid component (want [A-Za-z0-9_-]+)`);
    }
  }
  const host = defaultPlatform();
  if (parts.length === 1) {
    const os = normalizeOS(parts[0]!);
    if (KNOWN_OS.has(os)) {
      return {
        os,
        architecture: host.architecture,
        ...(host.variant ? { variant: host.variant } : {}),
      };
    }
    let [architecture, variant] = normalizeArch(parts[0]!, "");
    if (architecture === "arm" && variant === "v7") variant = "";
    if (KNOWN_ARCH.has(architecture)) {
      return { os: "linux", architecture, ...(variant ? { variant } : {}) };
    }
    throw fail("unknown operating system or architecture");
  }
  const os = normalizeOS(parts[0]!);
  if (parts.length === 2) {
    let [architecture, variant] = normalizeArch(parts[1]!, "");
    if (architecture === "arm" && variant === "v7") variant = "";
    return { os, architecture, ...(variant ? { variant } : {}) };
  }
  let [architecture, variant] = normalizeArch(parts[1]!, parts[2]!);
  if (architecture === "arm64" && variant === "") variant = "v8";
  return { os, architecture, ...(variant ? { variant } : {}) };
}

/** `os/arch[/variant]`, or `unknown` when the OS is missing. */
export function formatPlatform(p: Platform): string {
  if (!p.os) return "unknown";
  return [p.os, p.architecture, p.variant].filter((x) => x).join("/");
}

function same(a: Platform, b: Platform): boolean {
  return a.os === b.os && a.architecture === b.architecture &&
    (a.variant ?? "") === (b.variant ?? "");
}

/** The platforms a machine of `p` runs, best first (containerd's platformVector). */
function platformVector(p: Platform): Platform[] {
  const vector: Platform[] = [p];
  const base = { os: p.os };
  const version = (v: string | undefined) => Number.parseInt((v ?? "").replace(/^v/, ""), 10);
  switch (p.architecture) {
    case "amd64": {
      const v = version(p.variant);
      if (v > 1) {
        for (let i = v - 1; i >= 1; i--) {
          vector.push({ ...base, architecture: "amd64", ...(i > 1 ? { variant: `v${i}` } : {}) });
        }
      }
      vector.push({ ...base, architecture: "386" });
      break;
    }
    case "arm": {
      const v = version(p.variant);
      if (v > 5) {
        for (let i = v - 1; i >= 5; i--) {
          vector.push({ ...base, architecture: "arm", variant: `v${i}` });
        }
      }
      break;
    }
    case "arm64": {
      const variant = p.variant || "v8";
      const [major, minor] = variant.replace(/^v/, "").split(".").map((x) =>
        Number.parseInt(x, 10)
      );
      if (major === 8 && minor !== undefined && minor > 0) {
        for (let i = minor - 1; i >= 0; i--) {
          vector.push({ ...base, architecture: "arm64", ...(i > 0 ? { variant: `v8.${i}` } : {}) });
        }
      }
      vector.push(...platformVector({ ...base, architecture: "arm", variant: "v8" }));
      break;
    }
  }
  return vector;
}

/** The platform an image config gives (its `os`, `architecture` and `variant`; empty when missing). */
export function configPlatform(
  c: { os?: unknown; architecture?: unknown; variant?: unknown },
): Platform {
  return {
    os: typeof c.os === "string" ? c.os : "",
    architecture: typeof c.architecture === "string" ? c.architecture : "",
    ...(typeof c.variant === "string" && c.variant ? { variant: c.variant } : {}),
  };
}

/**
 * A matcher for a machine of platform `p` (containerd's `platforms.Only`):
 * it matches `p` and what `p` can run, preferring `p`.
 */
export function platformMatcher(p: Platform): PlatformMatcher {
  const wanted = platformVector(normalizePlatform(p));
  const rank = (candidate: Platform) => {
    const n = normalizePlatform(candidate);
    return wanted.findIndex((w) => same(w, n));
  };
  return {
    name: formatPlatform(p),
    match: (candidate) => rank(candidate) >= 0,
    less(a, b) {
      const ra = rank(a);
      const rb = rank(b);
      if (ra < 0) return false;
      return rb < 0 || ra < rb;
    },
  };
}

/** A matcher that matches every platform, with no preference. */
export const ALL_PLATFORMS: PlatformMatcher = { match: () => true, less: () => false };
