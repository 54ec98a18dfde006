/**
 * What `run`, `containers create`, `containers start|exec` and `tasks
 * start|exec` share: the container flags and the request they make, and
 * running a task or exec attached to the CLI's stdio until it exits.
 *
 * @module
 */

import { type CreateContainerRequest, InvalidArgument, type TugClient } from "../mod.ts";
import { trace } from "../trace.ts";
import { parseSize } from "../util/units.ts";
import { boolFlag, type FlagSpec, listFlag, type ParsedArgs, stringFlag } from "./args.ts";
import { forwardResize, forwardSignals, StdioSession, terminalSize } from "./_stdio.ts";

/** Flags of `run` and `containers create`. */
export const CONTAINER_FLAGS: readonly FlagSpec[] = [
  { name: "tty", aliases: ["t"], type: "boolean", help: "Give the container a terminal" },
  {
    name: "interactive",
    aliases: ["i"],
    type: "boolean",
    help: "Attach stdin (implied by --tty)",
  },
  {
    name: "env",
    aliases: ["e"],
    type: "list",
    value: "NAME=VALUE",
    help: "Set an environment variable (repeatable)",
  },
  {
    name: "env-file",
    type: "list",
    value: "FILE",
    help: "Read NAME=VALUE lines from a file (repeatable)",
  },
  { name: "cwd", type: "string", value: "DIR", help: "Working directory inside the container" },
  {
    name: "user",
    aliases: ["u"],
    type: "string",
    value: "USER[:GROUP]",
    help: "User (name or uid, as in the image)",
  },
  { name: "hostname", type: "string", value: "NAME", help: "Hostname (default: the container id)" },
  {
    name: "mount",
    type: "list",
    value: "SPEC",
    help: "Mount, e.g. type=bind,src=/a,dst=/b,options=rbind:ro (repeatable)",
  },
  { name: "net-host", type: "boolean", help: "Share the host's network namespace" },
  {
    name: "memory-limit",
    type: "string",
    value: "SIZE",
    help: "Memory limit, e.g. 64MiB or bytes",
  },
  { name: "cpus", type: "string", value: "N", help: "CPUs the container may use, e.g. 0.5" },
  { name: "pids-limit", type: "string", value: "N", help: "Most processes the container may have" },
  { name: "read-only", type: "boolean", help: "Mount the root filesystem read-only" },
  { name: "privileged", type: "boolean", help: "Every capability, every device, no seccomp" },
  { name: "cap-add", type: "list", value: "CAP", help: "Add a capability (repeatable; ALL)" },
  { name: "cap-drop", type: "list", value: "CAP", help: "Drop a capability (repeatable; ALL)" },
  {
    name: "seccomp-profile",
    type: "string",
    value: "FILE",
    help: "A seccomp profile (OCI linux.seccomp JSON), or 'unconfined'",
  },
  { name: "label", type: "list", value: "KEY=VALUE", help: "Set a label (repeatable)" },
  {
    name: "restart",
    type: "string",
    value: "POLICY",
    help: "no, always, on-failure[:N] or unless-stopped (default no)",
  },
  {
    name: "log-opt",
    type: "list",
    value: "KEY=VALUE",
    help: "Log rotation: max-size=SIZE, max-file=N (repeatable)",
  },
  {
    name: "snapshotter",
    type: "string",
    value: "NAME",
    help: "Snapshotter (default: the daemon's)",
  },
];

function keyValues(values: string[], flag: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of values) {
    const eq = v.indexOf("=");
    if (eq <= 0) throw new InvalidArgument(`Invalid ${flag} ${JSON.stringify(v)}: use KEY=VALUE`);
    out[v.slice(0, eq)] = v.slice(eq + 1);
  }
  return out;
}

function positiveNumber(
  text: string | undefined,
  flag: string,
  integer: boolean,
): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) {
    throw new InvalidArgument(
      `Invalid ${flag} ${JSON.stringify(text)}: expected a positive ${
        integer ? "whole " : ""
      }number`,
    );
  }
  return n;
}

/** Reads `--env-file` files: NAME=VALUE lines, `#` comments, blank lines; a bare NAME takes the CLI's value. */
export async function readEnvFiles(files: string[]): Promise<string[]> {
  const env: string[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = await Deno.readTextFile(file);
    } catch (err) {
      throw new InvalidArgument(`Cannot read --env-file ${file}: ${(err as Error).message}`);
    }
    for (const [i, raw] of text.split("\n").entries()) {
      const line = raw.trim();
      if (!line || line.startsWith("#")) continue;
      if (line.includes("=")) {
        if (line.startsWith("=")) {
          throw new InvalidArgument(
            `Invalid line ${i + 1} of --env-file ${file}: ${JSON.stringify(line)}`,
          );
        }
        env.push(line);
      } else {
        const v = Deno.env.get(line);
        if (v !== undefined) env.push(`${line}=${v}`);
      }
    }
  }
  return env;
}

/** The create request of `run` / `containers create` from their flags. */
export async function createRequest(
  args: ParsedArgs,
  image: string,
  id: string,
  command: string[],
): Promise<CreateContainerRequest> {
  const req: CreateContainerRequest = { id, image };
  if (command.length) req.args = command;
  const env = [...(await readEnvFiles(listFlag(args, "env-file"))), ...listFlag(args, "env")];
  if (env.length) req.env = env;
  const cwd = stringFlag(args, "cwd");
  if (cwd !== undefined) req.cwd = cwd;
  const user = stringFlag(args, "user");
  if (user !== undefined) req.user = user;
  const hostname = stringFlag(args, "hostname");
  if (hostname !== undefined) req.hostname = hostname;
  const mounts = listFlag(args, "mount");
  if (mounts.length) {
    const { parseMountFlag } = await import("../daemon/containers/spec.ts");
    req.mounts = mounts.map(parseMountFlag);
  }
  if (boolFlag(args, "net-host")) req.netHost = true;
  const memory = stringFlag(args, "memory-limit");
  if (memory !== undefined) {
    req.memoryLimit = parseSize(memory, "--memory-limit");
    if (req.memoryLimit <= 0) {
      throw new InvalidArgument("Invalid --memory-limit 0: must be positive");
    }
  }
  const cpus = positiveNumber(stringFlag(args, "cpus"), "--cpus", false);
  if (cpus !== undefined) req.cpus = cpus;
  const pids = positiveNumber(stringFlag(args, "pids-limit"), "--pids-limit", true);
  if (pids !== undefined) req.pidsLimit = pids;
  if (boolFlag(args, "read-only")) req.readOnly = true;
  if (boolFlag(args, "privileged")) req.privileged = true;
  const capAdd = listFlag(args, "cap-add");
  if (capAdd.length) req.capAdd = capAdd;
  const capDrop = listFlag(args, "cap-drop");
  if (capDrop.length) req.capDrop = capDrop;
  const profile = stringFlag(args, "seccomp-profile");
  if (profile !== undefined) {
    if (profile === "unconfined") req.seccompProfile = "unconfined";
    else {
      let parsed: unknown;
      try {
        parsed = JSON.parse(await Deno.readTextFile(profile));
      } catch (err) {
        throw new InvalidArgument(
          `Cannot read --seccomp-profile ${profile}: ${(err as Error).message}`,
        );
      }
      req.seccompProfile = parsed as NonNullable<CreateContainerRequest["seccompProfile"]>;
    }
  }
  const labels = keyValues(listFlag(args, "label"), "--label");
  if (Object.keys(labels).length) req.labels = labels;
  const restart = stringFlag(args, "restart");
  if (restart !== undefined) {
    const { parseRestart } = await import("../daemon/containers/spec.ts");
    req.restart = parseRestart(restart);
  }
  for (const [k, v] of Object.entries(keyValues(listFlag(args, "log-opt"), "--log-opt"))) {
    if (k === "max-size") req.logMaxSize = parseSize(v, "--log-opt max-size");
    else if (k === "max-file") {
      req.logMaxFile = positiveNumber(v, "--log-opt max-file", true)!;
    } else {
      throw new InvalidArgument(`Unknown --log-opt ${JSON.stringify(k)}: use max-size or max-file`);
    }
  }
  const snapshotter = stringFlag(args, "snapshotter");
  if (snapshotter !== undefined) req.snapshotter = snapshotter;
  if (boolFlag(args, "tty")) {
    req.terminal = true;
    const size = terminalSize();
    if (size) req.consoleSize = size;
  }
  return req;
}

/** Options of {@link startAttached}. */
export interface AttachedOptions {
  terminal: boolean;
  stdin: boolean;
  /** Have the daemon delete the container once the task has exited (before the exit code comes back). */
  remove?: boolean;
}

/**
 * Starts the container's task with its stdio on the CLI's, forwards
 * signals (or terminal size), waits for the exit, and returns the exit code;
 * `undefined` when the user detached (with `remove`, the daemon still
 * deletes the container when its task exits, as Docker's `run --rm` does).
 */
export async function startAttached(
  client: TugClient,
  id: string,
  options: AttachedOptions,
): Promise<number | undefined> {
  const session = await StdioSession.open({ id, ...options });
  trace("run: fifos");
  try {
    await client.tasks.start(id, session.request);
    trace("run: started");
    return await follow(client, id, session, options.terminal, {
      ...(options.remove ? { remove: true } : {}),
    });
  } finally {
    await session.close();
  }
}

/** Runs a process in the container with the CLI's stdio; its exit code (undefined: detached). */
export async function execAttached(
  client: TugClient,
  id: string,
  execId: string,
  request: {
    args: string[];
    terminal: boolean;
    stdin: boolean;
    cwd?: string;
    user?: string;
    env?: string[];
  },
): Promise<number | undefined> {
  const session = await StdioSession.open({
    id: `${id}-${execId}`,
    stdin: request.stdin,
    terminal: request.terminal,
  });
  const size = request.terminal ? terminalSize() : undefined;
  try {
    await client.tasks.exec(id, {
      execId,
      args: request.args,
      ...session.request,
      ...(request.terminal ? { terminal: true } : {}),
      ...(size ? { consoleSize: size } : {}),
      ...(request.cwd ? { cwd: request.cwd } : {}),
      ...(request.user ? { user: request.user } : {}),
      ...(request.env?.length ? { env: request.env } : {}),
    });
    return await follow(client, id, session, request.terminal, { execId });
  } finally {
    await session.close();
  }
}

/**
 * Attaches the CLI's stdio to a running task (stdin too when it has a
 * terminal) until it exits; its exit code (undefined: detached). Signals
 * are not forwarded: Ctrl-C ends the attachment, not the task.
 */
export async function attachTo(
  client: TugClient,
  id: string,
  terminal: boolean,
): Promise<number | undefined> {
  const session = await StdioSession.open({ id, stdin: terminal, terminal });
  try {
    await client.tasks.attach(id, session.request);
    return await follow(client, id, session, terminal, { signals: false });
  } finally {
    await session.close();
  }
}

async function follow(
  client: TugClient,
  id: string,
  session: StdioSession,
  terminal: boolean,
  options: { execId?: string; signals?: boolean; remove?: boolean } = {},
): Promise<number | undefined> {
  const { execId, signals = true, remove = false } = options;
  // The wait goes out first: a short-lived process has often exited by the time it arrives.
  const abort = new AbortController();
  const exited = client.tasks.wait(id, {
    ...(execId ? { execId } : {}),
    ...(remove ? { remove: true } : {}),
    signal: abort.signal,
  });
  exited.catch(() => {}); // handled below; this keeps a failure before then from going unhandled
  let drained = false;
  const output = session.pump().then(() => {
    drained = true;
  });
  const stopResize = terminal ? forwardResize(client, id, execId) : () => {};
  // Signals go to the task, or (attach) end the attachment: the CLI then still removes its FIFOs.
  const stopSignals = signals && !terminal
    ? forwardSignals(client, id, execId)
    : !signals
    ? detachOnSignals(session)
    : () => {};
  const stop = () => {
    stopResize();
    stopSignals();
  };
  try {
    const first = await Promise.race([
      exited.then((s) => ({ exit: s })),
      session.detached.then(() => ({ exit: undefined })),
    ]);
    if (!first.exit) {
      abort.abort();
      session.restoreTerminal();
      return undefined;
    }
    // The exit is known: let the output drain (the shim closes its ends once it is read), for up to
    // 2 s. AbortSignal.timeout, not setTimeout: a process's first setTimeout costs Deno ~4 ms.
    await Promise.resolve();
    if (!drained) {
      const giveUp = AbortSignal.timeout(2000);
      await Promise.race([output, new Promise((r) => giveUp.addEventListener("abort", r))]);
    }
    return first.exit.exitCode;
  } finally {
    stop();
    session.restoreTerminal();
  }
}

/** Detaches `session` on SIGINT, SIGTERM or SIGHUP; returns a function that stops listening. */
function detachOnSignals(session: StdioSession): () => void {
  const signals: Deno.Signal[] = ["SIGINT", "SIGTERM", "SIGHUP"];
  const detach = () => session.detach();
  for (const s of signals) Deno.addSignalListener(s, detach);
  return () => {
    for (const s of signals) Deno.removeSignalListener(s, detach);
  };
}
