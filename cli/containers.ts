/**
 * `tug containers`: create, list (ls), info, delete (rm), start, exec,
 * logs. A container is a record (image, snapshot, spec); its task is the
 * running process (see `tug tasks`).
 *
 * @module
 */

import { type ContainerInfo, InvalidArgument, type LogEntry } from "../mod.ts";
import { parseDuration } from "../util/units.ts";
import { boolFlag, listFlag, stringFlag } from "./args.ts";
import {
  age,
  connect,
  forEachName,
  JSON_FLAG,
  positionals,
  printJson,
  printTable,
  runGroup,
  type Verb,
} from "./_common.ts";
import { CONTAINER_FLAGS, createRequest, execAttached, startAttached } from "./_container.ts";

/** `tug containers list` rows. */
export function containerRows(list: ContainerInfo[], now = Date.now()): string[][] {
  return list.map((c) => [
    c.id,
    c.image ?? "-",
    c.task
      ? c.task.status === "stopped" && c.task.exit
        ? `stopped (${c.task.exit.exitCode})`
        : c.task.status
      : "created",
    c.task?.pid ? String(c.task.pid) : "-",
    `${age(c.createdAt, now)} ago`,
  ]);
}

const create: Verb = {
  summary: "Create a container from an image (its task is started with 'start')",
  usage: "[flags] IMAGE ID [COMMAND [ARG...]]",
  flags: CONTAINER_FLAGS,
  stopAfterPositionals: 2,
  aliases: ["c"],
  async run(args, command) {
    const [image, id] = args.positionals;
    if (image === undefined || id === undefined) {
      throw new InvalidArgument(`${command} needs IMAGE and ID`);
    }
    using client = connect(args);
    await client.containers.create(await createRequest(args, image, id, args.rest));
    return 0;
  },
};

const list: Verb = {
  summary: "List containers and the state of their tasks",
  usage: "[flags]",
  flags: [JSON_FLAG, { name: "quiet", aliases: ["q"], type: "boolean", help: "Print only ids" }],
  aliases: ["ls"],
  async run(args, command) {
    positionals(args, command, "no arguments", 0);
    using client = connect(args);
    const all = await client.containers.list();
    if (boolFlag(args, "json")) printJson(all);
    else if (boolFlag(args, "quiet")) { for (const c of all) console.log(c.id); }
    else printTable(["CONTAINER", "IMAGE", "STATUS", "PID", "CREATED"], containerRows(all));
    return 0;
  },
};

const info: Verb = {
  summary: "Show a container's record, OCI spec and task as JSON",
  usage: "[--json] ID",
  // Always JSON (as `ctr containers info`); --json is accepted as on every list and info command.
  flags: [JSON_FLAG],
  async run(args, command) {
    const [id] = positionals(args, command, "ID", 1);
    using client = connect(args);
    printJson(await client.containers.get(id!));
    return 0;
  },
};

const del: Verb = {
  summary: "Remove containers (their snapshots and logs too)",
  usage: "[flags] ID...",
  flags: [{
    name: "force",
    aliases: ["f"],
    type: "boolean",
    help: "Kill and remove a running task first",
  }],
  aliases: ["rm", "remove"],
  async run(args, command) {
    const ids = positionals(args, command, "ID...", 1, Infinity);
    using client = connect(args);
    return await forEachName(
      ids,
      (id) => client.containers.delete(id, { force: boolFlag(args, "force") }),
    );
  },
};

const start: Verb = {
  summary: "Start a container's task in the background (output to its log)",
  usage: "[flags] ID",
  flags: [
    {
      name: "attach",
      aliases: ["a"],
      type: "boolean",
      help: "Attach to its output and wait for its exit",
    },
    {
      name: "interactive",
      aliases: ["i"],
      type: "boolean",
      help: "Attach stdin too (with --attach)",
    },
  ],
  async run(args, command) {
    const [id] = positionals(args, command, "ID", 1);
    using client = connect(args);
    if (!boolFlag(args, "attach")) {
      await client.tasks.start(id!);
      return 0;
    }
    const c = await client.containers.get(id!);
    const terminal = c.spec?.process?.terminal === true;
    const code = await startAttached(client, id!, {
      terminal,
      stdin: terminal || boolFlag(args, "interactive"),
    });
    return code ?? 0;
  },
};

/** The flags of `containers exec` and `tasks exec`. */
export const EXEC_FLAGS = [
  {
    name: "exec-id",
    type: "string",
    value: "ID",
    help: "The exec's id (required, unique in the task)",
  },
  { name: "tty", aliases: ["t"], type: "boolean", help: "Give the process a terminal" },
  { name: "interactive", aliases: ["i"], type: "boolean", help: "Attach stdin (implied by --tty)" },
  { name: "detach", aliases: ["d"], type: "boolean", help: "Do not wait for the process" },
  { name: "cwd", type: "string", value: "DIR", help: "Working directory" },
  { name: "user", aliases: ["u"], type: "string", value: "UID[:GID]", help: "User to run as" },
  {
    name: "env",
    aliases: ["e"],
    type: "list",
    value: "NAME=VALUE",
    help: "Set an environment variable (repeatable)",
  },
] as const satisfies Verb["flags"];

/** Runs `exec` for both command groups. */
export const exec: Verb = {
  summary: "Run a process in a container's running task",
  usage: "[flags] --exec-id ID CONTAINER COMMAND [ARG...]",
  flags: EXEC_FLAGS,
  stopAfterPositionals: 1,
  async run(args, command) {
    const [id] = args.positionals;
    const execId = stringFlag(args, "exec-id");
    if (!execId) throw new InvalidArgument(`${command} needs --exec-id`);
    if (id === undefined || args.rest.length === 0) {
      throw new InvalidArgument(`${command} needs CONTAINER and COMMAND`);
    }
    const terminal = boolFlag(args, "tty");
    const cwd = stringFlag(args, "cwd");
    const user = stringFlag(args, "user");
    const env = listFlag(args, "env");
    using client = connect(args);
    if (boolFlag(args, "detach")) {
      await client.tasks.exec(id, {
        execId,
        args: args.rest,
        ...(terminal ? { terminal } : {}),
        ...(cwd ? { cwd } : {}),
        ...(user ? { user } : {}),
        ...(env.length ? { env } : {}),
      });
      return 0;
    }
    if (terminal && !Deno.stdin.isTerminal()) {
      throw new InvalidArgument(`${command} -t: the input device is not a terminal`);
    }
    const code = await execAttached(client, id, execId, {
      args: args.rest,
      terminal,
      stdin: terminal || boolFlag(args, "interactive"),
      ...(cwd ? { cwd } : {}),
      ...(user ? { user } : {}),
      env,
    });
    return code ?? 0;
  },
};

/** Parses `--since`: an RFC 3339 time, or a duration before now (`10m`). */
export function parseSince(value: string, now = Date.now()): string {
  const t = Date.parse(value);
  if (!Number.isNaN(t) && /\d{4}-\d{2}-\d{2}/.test(value)) return new Date(t).toISOString();
  try {
    return new Date(now - parseDuration(value, "--since")).toISOString();
  } catch {
    throw new InvalidArgument(
      `Invalid --since ${
        JSON.stringify(value)
      }: give a time (2026-11-23T10:00:00Z) or a duration (10m)`,
    );
  }
}

const logs: Verb = {
  summary: "Print a container's logs",
  usage: "[flags] ID",
  flags: [
    {
      name: "follow",
      aliases: ["f"],
      type: "boolean",
      help: "Keep printing new lines until the task exits",
    },
    { name: "tail", aliases: ["n"], type: "string", value: "N", help: "Only the last N lines" },
    {
      name: "since",
      type: "string",
      value: "TIME",
      help: "Only lines since a time or a duration ago (10m)",
    },
    { name: "timestamps", aliases: ["t"], type: "boolean", help: "Show each line's time" },
  ],
  async run(args, command) {
    const [id] = positionals(args, command, "ID", 1);
    const tailText = stringFlag(args, "tail");
    let tail: number | undefined;
    if (tailText !== undefined && tailText !== "all") {
      tail = Number(tailText);
      if (!Number.isInteger(tail) || tail < 0) {
        throw new InvalidArgument(
          `Invalid --tail ${JSON.stringify(tailText)}: expected a whole number`,
        );
      }
    }
    const sinceText = stringFlag(args, "since");
    using client = connect(args);
    const abort = new AbortController();
    const stop = () => abort.abort();
    Deno.addSignalListener("SIGINT", stop);
    const encoder = new TextEncoder();
    const stamps = boolFlag(args, "timestamps");
    const write = (e: LogEntry) => {
      const text = stamps ? `${e.time} ${e.log}` : e.log;
      (e.stream === "stderr" ? Deno.stderr : Deno.stdout).writeSync(encoder.encode(text));
    };
    try {
      for await (
        const e of client.containers.logs(id!, {
          follow: boolFlag(args, "follow"),
          signal: abort.signal,
          ...(tail !== undefined ? { tail } : {}),
          ...(sinceText !== undefined ? { since: parseSince(sinceText) } : {}),
        })
      ) write(e);
    } catch (err) {
      if (!abort.signal.aborted) throw err;
    } finally {
      Deno.removeSignalListener("SIGINT", stop);
    }
    return 0;
  },
};

const VERBS: Record<string, Verb> = {
  create,
  list,
  info,
  delete: del,
  start,
  exec,
  logs,
};

/** `tug containers …` */
export function main(args: string[]): Promise<number> {
  return runGroup("containers", "Manage containers", VERBS, args);
}
