import { InvalidArgument } from "../../errors.ts";
import { assert, assertEquals, assertThrows } from "../../tests/assert.ts";
import type { Platform } from "../types.ts";
import {
  ALL_PLATFORMS,
  defaultPlatform,
  formatPlatform,
  normalizePlatform,
  parsePlatform,
  platformMatcher,
} from "./platforms.ts";

Deno.test("parsePlatform() reads os/arch/variant with containerd's defaults", () => {
  const table: [string, string][] = [
    ["linux/amd64", "linux/amd64"],
    ["linux/x86_64", "linux/amd64"],
    ["Linux/AMD64", "linux/amd64"],
    ["linux/arm64", "linux/arm64"],
    ["linux/aarch64", "linux/arm64"],
    ["linux/arm64/v8", "linux/arm64/v8"],
    ["linux/arm64/8", "linux/arm64/v8"],
    ["linux/arm", "linux/arm"],
    ["linux/arm/v7", "linux/arm/v7"],
    ["linux/arm/6", "linux/arm/v6"],
    ["linux/armhf", "linux/arm"],
    ["linux/armel", "linux/arm/v6"],
    ["linux/i386", "linux/386"],
    ["windows/amd64", "windows/amd64"],
    ["arm64", "linux/arm64"],
    ["s390x", "linux/s390x"],
  ];
  for (const [input, want] of table) {
    assertEquals(formatPlatform(parsePlatform(input)), want, input);
  }
  assertEquals(formatPlatform(parsePlatform("linux")), formatPlatform(defaultPlatform()));
});

Deno.test("parsePlatform() refuses what is not a platform and names it", () => {
  for (const bad of ["", "linux/", "linux/amd64/v1/x", "linux/*", "nonsense", "linux/am d64"]) {
    const err = assertThrows(() => parsePlatform(bad), InvalidArgument);
    assert(err.message.includes(`"${bad}"`), err.message);
  }
});

Deno.test("defaultPlatform() is this machine's", () => {
  const want = Deno.build.arch === "aarch64" ? "linux/arm64/v8" : "linux/amd64";
  assertEquals(formatPlatform(defaultPlatform()), want);
});

Deno.test("normalizePlatform() treats arm64/v8 as arm64 and gives arm v7", () => {
  assertEquals(normalizePlatform({ os: "linux", architecture: "aarch64", variant: "v8" }), {
    os: "linux",
    architecture: "arm64",
  });
  assertEquals(normalizePlatform({ os: "linux", architecture: "arm" }), {
    os: "linux",
    architecture: "arm",
    variant: "v7",
  });
});

const P = (s: string): Platform => {
  const [os, architecture, variant] = s.split("/") as [string, string, string?];
  return { os, architecture, ...(variant ? { variant } : {}) };
};

Deno.test("platformMatcher() matches the platform and what it can run, best first", () => {
  const amd64 = platformMatcher(P("linux/amd64"));
  assert(amd64.match(P("linux/amd64")));
  assert(amd64.match(P("linux/386")));
  assert(!amd64.match(P("linux/arm64")));
  assert(!amd64.match(P("windows/amd64")));
  assert(amd64.less(P("linux/amd64"), P("linux/386")));
  assert(!amd64.less(P("linux/386"), P("linux/amd64")));

  const arm64 = platformMatcher(P("linux/arm64/v8"));
  assert(arm64.match(P("linux/arm64")));
  assert(arm64.match(P("linux/arm64/v8")));
  assert(arm64.match(P("linux/arm/v7")));
  assert(!arm64.match(P("linux/amd64")));
  assert(arm64.less(P("linux/arm64"), P("linux/arm/v7")));

  const armv7 = platformMatcher(P("linux/arm/v7"));
  assert(armv7.match(P("linux/arm")));
  assert(armv7.match(P("linux/arm/v6")));
  assert(!armv7.match(P("linux/arm/v8")));
  assert(!armv7.match(P("linux/arm64")));

  const candidates = ["linux/386", "linux/arm64", "linux/amd64", "unknown/unknown"].map(P);
  const best = candidates.filter((c) => amd64.match(c)).sort((a, b) =>
    amd64.less(a, b) ? -1 : amd64.less(b, a) ? 1 : 0
  );
  assertEquals(best.map(formatPlatform), ["linux/amd64", "linux/386"]);
  assert(ALL_PLATFORMS.match(P("unknown/unknown")));
});
