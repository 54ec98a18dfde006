import {
  assertEquals,
  assertRejects,
  assertStringIncludes,
  assertThrows,
} from "../tests/assert.ts";
import { InvalidArgument } from "../errors.ts";
import { parseArgs } from "./args.ts";
import { containerRows, parseSince } from "./containers.ts";
import { CONTAINER_FLAGS, createRequest } from "./_container.ts";
import { detachAt } from "./_stdio.ts";

Deno.test("detachAt() finds Ctrl-P Ctrl-Q in a chunk", () => {
  assertEquals(detachAt(new Uint8Array([0x61, 0x10, 0x11])), 1);
  assertEquals(detachAt(new Uint8Array([0x10, 0x11])), 0);
  assertEquals(detachAt(new Uint8Array([0x10, 0x61, 0x11])), -1);
  assertEquals(detachAt(new Uint8Array([0x10])), -1);
});

Deno.test("parseSince() takes an RFC 3339 time or a duration before now", () => {
  const now = Date.parse("2026-11-23T10:00:00Z");
  assertEquals(parseSince("10m", now), "2026-11-23T09:50:00.000Z");
  assertEquals(parseSince("2026-11-23T08:00:00Z", now), "2026-11-23T08:00:00.000Z");
  assertThrows(() => parseSince("yesterday", now), InvalidArgument);
});

Deno.test("containerRows() shows the task's state and exit code", () => {
  const now = Date.parse("2026-11-23T10:00:10Z");
  assertEquals(
    containerRows([
      { id: "a", image: "busybox", labels: {}, createdAt: "2026-11-23T10:00:00Z" },
      {
        id: "b",
        labels: {},
        createdAt: "2026-11-23T10:00:00Z",
        task: { id: "b", pid: 42, status: "stopped", exit: { exitCode: 3, exitedAt: "" } },
      },
    ], now),
    [
      ["a", "busybox", "created", "-", "10 seconds ago"],
      ["b", "-", "stopped (3)", "42", "10 seconds ago"],
    ],
  );
});

Deno.test("createRequest() turns run flags into a create request and names bad values", async () => {
  const parse = (argv: string[]) => parseArgs(argv, CONTAINER_FLAGS, { stopAfterPositionals: 2 });
  const a = parse([
    "-t",
    "-e",
    "A=1",
    "--memory-limit",
    "64MiB",
    "--cpus",
    "0.5",
    "--pids-limit",
    "20",
    "--restart",
    "on-failure:2",
    "--log-opt",
    "max-size=1MiB",
    "--log-opt",
    "max-file=2",
    "--label",
    "k=v",
    "--net-host",
    "--read-only",
    "busybox",
    "c1",
    "sh",
    "-c",
    "echo hi",
  ]);
  const req = await createRequest(a, "busybox", "c1", a.rest);
  assertEquals(req, {
    id: "c1",
    image: "busybox",
    args: ["sh", "-c", "echo hi"],
    env: ["A=1"],
    netHost: true,
    memoryLimit: 64 << 20,
    cpus: 0.5,
    pidsLimit: 20,
    readOnly: true,
    labels: { k: "v" },
    restart: { name: "on-failure", maxRetries: 2 },
    logMaxSize: 1 << 20,
    logMaxFile: 2,
    terminal: true,
  });
  for (
    const [argv, message] of [
      [["--memory-limit", "abc"], "--memory-limit"],
      [["--cpus", "-1"], "--cpus"],
      [["--pids-limit", "1.5"], "--pids-limit"],
      [["--restart", "sometimes"], "--restart"],
      [["--log-opt", "color=red"], "--log-opt"],
      [["--label", "novalue"], "--label"],
      [["--env-file", "/nonexistent/env"], "--env-file"],
    ] as const
  ) {
    const p = parse([...argv, "img", "id"]);
    const err = await assertRejects(() => createRequest(p, "img", "id", []), InvalidArgument);
    assertStringIncludes(err.message, message);
  }
});
