import { assertEquals } from "../tests/assert.ts";
import { createLogger, formatLogLine } from "./log.ts";

Deno.test("formatLogLine() writes logfmt, quoting what needs it", () => {
  const at = new Date("2026-01-02T03:04:05.000Z");
  assertEquals(
    formatLogLine("warn", 'pull "x" failed', {
      ref: "docker.io/library/busybox:latest",
      error: "no route",
      n: 3,
      skip: undefined,
    }, at),
    'time=2026-01-02T03:04:05.000Z level=warn msg="pull \\"x\\" failed" ref=docker.io/library/busybox:latest error="no route" n=3',
  );
});

Deno.test("a logger writes its level and the quieter ones only", () => {
  const lines: string[] = [];
  const log = createLogger("warn", (l) => lines.push(l));
  log.debug("d");
  log.info("i");
  log.warn("w");
  log.error("e");
  assertEquals(lines.map((l) => /level=(\w+)/.exec(l)![1]), ["warn", "error"]);
});
