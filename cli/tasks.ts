/**
 * `tug tasks`: start, list (ls), kill, exec, ps, pause, resume, metrics,
 * attach, delete (rm): the running processes of containers, as `ctr tasks`.
 *
 * @module
 */

import { type CgroupStats, InvalidArgument } from "../mod.ts";
import { humanSize } from "../util/units.ts";
import { boolFlag, stringFlag } from "./args.ts";
import {
  connect,
  forEachName,
  JSON_FLAG,
  positionals,
  printJson,
  printTable,
  runGroup,
  type Verb,
} from "./_common.ts";
import { attachTo, startAttached } from "./_container.ts";
import { exec } from "./containers.ts";

const start: Verb = {
  summary: "Start a container's task attached to the terminal (-d: in the background)",
  usage: "[flags] ID",
  flags: [
    {
      name: "detach",
      aliases: ["d"],
      type: "boolean",
      help: "Do not attach; output goes to the log",
    },
    { name: "interactive", aliases: ["i"], type: "boolean", help: "Attach stdin" },
  ],
  async run(args, command) {
    const [id] = positionals(args, command, "ID", 1);
    using client = connect(args);
    if (boolFlag(args, "detach")) {
      await client.tasks.start(id!);
      return 0;
    }
    const c = await client.containers.get(id!);
    const terminal = c.spec?.process?.terminal === true;
    if (terminal && !Deno.stdin.isTerminal()) {
      throw new InvalidArgument(
        `${command}: the container has a terminal and the input device is not one; use -d`,
      );
    }
    return (await startAttached(client, id!, {
      terminal,
      stdin: terminal || boolFlag(args, "interactive"),
    })) ?? 0;
  },
};

const list: Verb = {
  summary: "List tasks",
  usage: "[flags]",
  flags: [JSON_FLAG],
  aliases: ["ls"],
  async run(args, command) {
    positionals(args, command, "no arguments", 0);
    using client = connect(args);
    const tasks = await client.tasks.list();
    if (boolFlag(args, "json")) printJson(tasks);
    else {
      printTable(
        ["TASK", "PID", "STATUS"],
        tasks.map((
          t,
        ) => [
          t.id,
          String(t.pid),
          t.exit && t.status === "stopped" ? `stopped (${t.exit.exitCode})` : t.status,
        ]),
      );
    }
    return 0;
  },
};

const kill: Verb = {
  summary: "Signal a task (default SIGTERM)",
  usage: "[flags] ID",
  flags: [
    {
      name: "signal",
      aliases: ["s"],
      type: "string",
      value: "SIGNAL",
      help: "Name (TERM, SIGKILL) or number",
    },
    { name: "all", aliases: ["a"], type: "boolean", help: "Every process of the container" },
    { name: "exec-id", type: "string", value: "ID", help: "Signal this exec instead" },
  ],
  async run(args, command) {
    const [id] = positionals(args, command, "ID", 1);
    const signal = stringFlag(args, "signal") ?? "TERM";
    const execId = stringFlag(args, "exec-id");
    using client = connect(args);
    await client.tasks.kill(id!, {
      signal: /^\d+$/.test(signal) ? Number(signal) : signal,
      ...(boolFlag(args, "all") ? { all: true } : {}),
      ...(execId ? { execId } : {}),
    });
    return 0;
  },
};

const ps: Verb = {
  summary: "List the processes of a task",
  usage: "[flags] ID",
  flags: [JSON_FLAG],
  async run(args, command) {
    const [id] = positionals(args, command, "ID", 1);
    using client = connect(args);
    const pids = await client.tasks.ps(id!);
    if (boolFlag(args, "json")) printJson(pids);
    else printTable(["PID"], pids.map((p) => [String(p)]));
    return 0;
  },
};

function simple(summary: string, call: "pause" | "resume"): Verb {
  return {
    summary,
    usage: "ID",
    flags: [],
    async run(args, command) {
      const [id] = positionals(args, command, "ID", 1);
      using client = connect(args);
      await client.tasks[call](id!);
      return 0;
    },
  };
}

/** Rows of `tasks metrics` for people. */
export function metricsRows(s: CgroupStats): string[][] {
  return [
    ["cpu usage", `${(s.cpu.usageNs / 1e9).toFixed(3)}s`],
    ["cpu user", `${(s.cpu.userNs / 1e9).toFixed(3)}s`],
    ["cpu system", `${(s.cpu.systemNs / 1e9).toFixed(3)}s`],
    ["memory usage", humanSize(s.memory.usage)],
    ["memory limit", s.memory.limit === null ? "none" : humanSize(s.memory.limit)],
    ["memory rss", humanSize(s.memory.rss)],
    ["memory cache", humanSize(s.memory.cache)],
    ["pids", s.pids.limit ? `${s.pids.current} / ${s.pids.limit}` : String(s.pids.current)],
  ];
}

const metrics: Verb = {
  summary: "Show a task's cgroup figures (CPU, memory, pids, I/O)",
  usage: "[flags] ID",
  flags: [JSON_FLAG],
  async run(args, command) {
    const [id] = positionals(args, command, "ID", 1);
    using client = connect(args);
    const stats = await client.tasks.metrics(id!);
    if (boolFlag(args, "json")) printJson(stats);
    else printTable(["METRIC", "VALUE"], metricsRows(stats));
    return 0;
  },
};

const attach: Verb = {
  summary: "Attach to a running task's output (and input, with a terminal) until it exits",
  usage: "ID",
  flags: [],
  async run(args, command) {
    const [id] = positionals(args, command, "ID", 1);
    using client = connect(args);
    const c = await client.containers.get(id!);
    const terminal = c.spec?.process?.terminal === true;
    return (await attachTo(client, id!, terminal)) ?? 0;
  },
};

const del: Verb = {
  summary: "Remove a stopped task (--force: kill a running one first)",
  usage: "[flags] ID...",
  flags: [{ name: "force", aliases: ["f"], type: "boolean", help: "Kill it if it is running" }],
  aliases: ["rm"],
  async run(args, command) {
    const ids = positionals(args, command, "ID...", 1, Infinity);
    using client = connect(args);
    return await forEachName(
      ids,
      (id) => client.tasks.delete(id, { force: boolFlag(args, "force") }),
    );
  },
};

const VERBS: Record<string, Verb> = {
  start,
  list,
  kill,
  exec,
  ps,
  pause: simple("Freeze a task's processes", "pause"),
  resume: simple("Thaw a paused task", "resume"),
  metrics,
  attach,
  delete: del,
};

/** `tug tasks …` */
export function main(args: string[]): Promise<number> {
  return runGroup("tasks", "Manage tasks (the running processes of containers)", VERBS, args);
}
