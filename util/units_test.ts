import { InvalidArgument } from "../errors.ts";
import { assertEquals, assertThrows } from "../tests/assert.ts";
import { formatDuration, formatSize, humanSize, parseDuration, parseSize } from "./units.ts";

Deno.test("parseDuration() reads Go-style durations", () => {
  assertEquals(parseDuration("10s"), 10_000);
  assertEquals(parseDuration("1h30m"), 5_400_000);
  assertEquals(parseDuration("250ms"), 250);
  assertEquals(parseDuration("1.5s"), 1500);
  assertEquals(parseDuration("0"), 0);
  assertEquals(parseDuration("2m3s"), 123_000);
});

Deno.test("parseDuration() rejects what is not a duration, naming it", () => {
  for (const bad of ["", "10", "s", "-1s", "1d", "1 s", "abc"]) {
    assertThrows(() => parseDuration(bad, "timeout"), InvalidArgument, "Invalid timeout");
  }
});

Deno.test("formatDuration() gives what parseDuration() reads back", () => {
  for (const ms of [0, 1, 999, 1000, 1500, 60_000, 90_000, 3_600_000, 5_400_000, 3_723_000]) {
    assertEquals(parseDuration(formatDuration(ms)), ms);
  }
  assertEquals(formatDuration(30_000), "30s");
  assertEquals(formatDuration(5_400_000), "1h30m");
});

Deno.test("parseSize() reads bytes and binary units in any spelling", () => {
  assertEquals(parseSize("512"), 512);
  assertEquals(parseSize(4096), 4096);
  assertEquals(parseSize("10MiB"), 10 << 20);
  assertEquals(parseSize("10m"), 10 << 20);
  assertEquals(parseSize("10MB"), 10 << 20);
  assertEquals(parseSize("1g"), 1 << 30);
  assertEquals(parseSize("64 KiB"), 64 << 10);
  assertEquals(parseSize("1.5k"), 1536);
});

Deno.test("parseSize() rejects negative, fractional byte counts and unknown units", () => {
  for (const bad of ["", "-1", "10x", "MiB", "1e3"]) {
    assertThrows(() => parseSize(bad, "logs.max_size"), InvalidArgument, "Invalid logs.max_size");
  }
  assertThrows(() => parseSize(-5), InvalidArgument);
  assertThrows(() => parseSize(1.5), InvalidArgument);
});

Deno.test("formatSize() is exact and humanSize() is short", () => {
  assertEquals(formatSize(10 << 20), "10MiB");
  assertEquals(formatSize(1536 * 1024), "1536KiB");
  assertEquals(formatSize(1000), "1000");
  assertEquals(formatSize(0), "0");
  for (const n of [0, 1000, 1024, 10 << 20, 3 * 1024 ** 3]) {
    assertEquals(parseSize(formatSize(n)), n);
  }
  assertEquals(humanSize(512), "512 B");
  assertEquals(humanSize(1536), "1.5 KiB");
  assertEquals(humanSize(300 << 20), "300 MiB");
});
