/**
 * `tug runtime`: a runc-compatible command line over runtime/container.ts.
 * Flags and behaviour follow runc's so that tools written for runc (containerd's
 * shim, Docker, test suites) can drive tug unchanged.
 *
 * @module
 */

import { resolve } from "../util/path.ts";
import {
  boolFlag,
  expectPositionals,
  flagHelp,
  type FlagSpec,
  listFlag,
  parseArgs,
  type ParsedArgs,
  stringFlag,
} from "../cli/args.ts";
import { errorMessage, InvalidArgument, NotImplemented } from "../errors.ts";
import { SIGNALS, SOCK_STREAM } from "../ffi/constants.ts";
import { libcSyscall } from "../ffi/libc.ts";
import { exitCodeOf } from "../ffi/syscall.ts";
import { armCgroupAttach } from "./cgroups/arm.ts";
import {
  cgroupFor,
  containerPids,
  containerState,
  createContainer,
  deleteContainer,
  inspect,
  killContainer,
  listContainers,
  pauseContainer,
  resumeContainer,
  type RuntimeOptions,
  startContainer,
  writePidFile,
} from "./container.ts";
import { defaultSpec } from "./default_spec.ts";
import { features } from "./features.ts";
import { parseSignal } from "./signals.ts";
import { DEFAULT_ROOT } from "./state.ts";
import type { Process } from "./spec.ts";
import { trace } from "../trace.ts";

const GLOBAL_FLAGS: FlagSpec[] = [
  { name: "root", type: "string", value: "DIR", help: `state directory (default ${DEFAULT_ROOT})` },
  { name: "log", type: "string", value: "FILE", help: "also write errors and warnings to FILE" },
  {
    name: "log-format",
    type: "string",
    value: "text|json",
    help: "format of --log (default text)",
  },
  { name: "debug", type: "boolean", help: "print stack traces on errors" },
  { name: "systemd-cgroup", type: "boolean", help: "not supported: tug uses cgroupfs paths" },
  { name: "criu", type: "string", value: "PATH", help: "ignored (no checkpoint/restore)" },
  {
    name: "rootless",
    type: "string",
    value: "auto|true|false",
    help: "only false/auto: rootless mode comes later",
  },
  { name: "help", aliases: ["h"], type: "boolean" },
];

const CREATE_FLAGS: FlagSpec[] = [
  {
    name: "bundle",
    aliases: ["b"],
    type: "string",
    value: "DIR",
    help: "bundle directory (default: current directory)",
  },
  {
    name: "console-socket",
    type: "string",
    value: "PATH",
    help: "unix socket that receives the pty master",
  },
  { name: "pid-file", type: "string", value: "FILE", help: "write the container's pid to FILE" },
  {
    name: "preserve-fds",
    type: "string",
    value: "N",
    help: "pass N more fds (from 3) to the container",
  },
  {
    name: "no-pivot",
    type: "boolean",
    help: "accepted for compatibility; tug always uses pivot_root",
  },
  {
    name: "no-new-keyring",
    type: "boolean",
    help: "accepted for compatibility (no session keyring is made)",
  },
  { name: "help", aliases: ["h"], type: "boolean" },
];

const RUN_FLAGS: FlagSpec[] = [
  ...CREATE_FLAGS.filter((f) => f.name !== "help"),
  { name: "detach", aliases: ["d"], type: "boolean", help: "start the container and return" },
  { name: "keep", type: "boolean", help: "keep the container after it exits" },
  { name: "no-subreaper", type: "boolean", help: "accepted for compatibility" },
  { name: "help", aliases: ["h"], type: "boolean" },
];

interface Sub {
  flags: FlagSpec[];
  usage: string;
  summary: string;
  run: (args: ParsedArgs, options: RuntimeOptions) => Promise<number> | number;
}

const HELP: FlagSpec[] = [{ name: "help", aliases: ["h"], type: "boolean" }];

function id(args: ParsedArgs, command: string): string {
  return expectPositionals(args, ["container-id"], command)[0]!;
}

function preserveFds(args: ParsedArgs): number {
  const raw = stringFlag(args, "preserve-fds", "0")!;
  if (!/^\d+$/.test(raw)) {
    throw new InvalidArgument(`Invalid --preserve-fds: ${JSON.stringify(raw)} is not a number`);
  }
  return Number(raw);
}

function printJson(value: unknown): void {
  console.log(JSON.stringify(value, null, 2));
}

const SUBCOMMANDS: Record<string, Sub> = {
  create: {
    flags: CREATE_FLAGS,
    usage: "create [flags] ID",
    summary: "create a container from a bundle; it waits for start",
    run: async (args, options) => {
      const pidFile = stringFlag(args, "pid-file");
      const consoleSocket = stringFlag(args, "console-socket");
      await createContainer(id(args, "create"), {
        ...options,
        bundle: stringFlag(args, "bundle") ?? Deno.cwd(),
        preserveFds: preserveFds(args),
        ...(pidFile ? { pidFile } : {}),
        ...(consoleSocket ? { consoleSocket: resolve(consoleSocket) } : {}),
      });
      return 0;
    },
  },
  start: {
    flags: HELP,
    usage: "start ID",
    summary: "run the process of a created container",
    run: async (args, options) => {
      await startContainer(id(args, "start"), options);
      return 0;
    },
  },
  state: {
    flags: HELP,
    usage: "state ID",
    summary: "print the container's OCI state as JSON",
    run: (args, options) => {
      printJson(containerState(id(args, "state"), options));
      return 0;
    },
  },
  kill: {
    flags: [{
      name: "all",
      aliases: ["a"],
      type: "boolean",
      help: "signal every process in the container",
    }, ...HELP],
    usage: "kill [--all] ID [SIGNAL]",
    summary: "send a signal (default TERM) to the container",
    run: async (args, options) => {
      if (args.positionals.length < 1) throw new InvalidArgument("kill needs a container id");
      if (args.positionals.length > 2) {
        throw new InvalidArgument(`kill takes ID [SIGNAL], got ${args.positionals.join(" ")}`);
      }
      const signal = parseSignal(args.positionals[1] ?? "TERM", { zero: true });
      await killContainer(args.positionals[0]!, signal, {
        ...options,
        all: boolFlag(args, "all"),
      });
      return 0;
    },
  },
  delete: {
    flags: [{
      name: "force",
      aliases: ["f"],
      type: "boolean",
      help: "kill a running container first",
    }, ...HELP],
    usage: "delete [--force] ID",
    summary: "remove a stopped (or, with --force, any) container",
    run: async (args, options) => {
      await deleteContainer(id(args, "delete"), { ...options, force: boolFlag(args, "force") });
      return 0;
    },
  },
  run: {
    flags: RUN_FLAGS,
    usage: "run [flags] ID",
    summary: "create and start a container, wait for it and return its exit code",
    run: (args, options) => runContainer(args, options),
  },
  exec: {
    flags: [
      {
        name: "process",
        aliases: ["p"],
        type: "string",
        value: "FILE",
        help: "the process as an OCI process.json (instead of COMMAND)",
      },
      {
        name: "console-socket",
        type: "string",
        value: "PATH",
        help: "unix socket that receives the pty master",
      },
      { name: "detach", aliases: ["d"], type: "boolean", help: "return once the process runs" },
      { name: "pid-file", type: "string", value: "FILE", help: "write the process's pid to FILE" },
      { name: "tty", aliases: ["t"], type: "boolean", help: "give the process a terminal" },
      { name: "cwd", type: "string", value: "DIR", help: "working directory in the container" },
      {
        name: "env",
        aliases: ["e"],
        type: "list",
        value: "NAME=VALUE",
        help: "set an environment variable",
      },
      {
        name: "user",
        aliases: ["u"],
        type: "string",
        value: "UID[:GID]",
        help: "run as this user",
      },
      {
        name: "additional-gids",
        aliases: ["g"],
        type: "list",
        value: "GID",
        help: "an additional group",
      },
      { name: "cap", aliases: ["c"], type: "list", value: "CAP", help: "add a capability" },
      { name: "no-new-privs", type: "boolean", help: "set no_new_privs" },
      {
        name: "preserve-fds",
        type: "string",
        value: "N",
        help: "pass N more fds (from 3) to the process",
      },
      ...HELP,
    ],
    usage: "exec [flags] ID COMMAND [ARG...]",
    summary: "run another process in a created or running container",
    run: (args, options) => execCommand(args, options),
  },
  list: {
    flags: [
      { name: "format", aliases: ["f"], type: "string", value: "table|json" },
      { name: "quiet", aliases: ["q"], type: "boolean", help: "print only ids" },
      ...HELP,
    ],
    usage: "list [--format table|json] [--quiet]",
    summary: "list containers",
    run: (args, options) => {
      const rows = listContainers(options);
      const format = stringFlag(args, "format", "table");
      if (boolFlag(args, "quiet")) rows.forEach((r) => console.log(r.id));
      else if (format === "json") printJson(rows);
      else if (format === "table") {
        const table = [
          ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"],
          ...rows.map((r) => [r.id, String(r.pid), r.status, r.bundle, r.created, r.owner]),
        ];
        const widths = table[0]!.map((_, c) => Math.max(...table.map((row) => row[c]!.length)));
        for (const row of table) {
          console.log(row.map((cell, c) => cell.padEnd(widths[c]!)).join("   ").trimEnd());
        }
      } else {throw new InvalidArgument(
          `Invalid --format: ${JSON.stringify(format)} (use table or json)`,
        );}
      return 0;
    },
  },
  ps: {
    flags: [{ name: "format", aliases: ["f"], type: "string", value: "table|json" }, ...HELP],
    usage: "ps [--format table|json] ID [ps options]",
    summary: "list the processes of a container",
    run: async (args, options) => {
      if (args.positionals.length < 1) throw new InvalidArgument("ps needs a container id");
      const pids = containerPids(args.positionals[0]!, options);
      const format = stringFlag(args, "format", "table");
      if (format === "json") {
        console.log(JSON.stringify(pids));
        return 0;
      }
      if (format !== "table") {
        throw new InvalidArgument(
          `Invalid --format: ${JSON.stringify(format)} (use table or json)`,
        );
      }
      const psArgs = args.positionals.length > 1 ? args.positionals.slice(1) : ["-ef"];
      const out = await new Deno.Command("ps", { args: psArgs, stdout: "piped", stderr: "inherit" })
        .output();
      const lines = new TextDecoder().decode(out.stdout).split("\n");
      const header = lines[0] ?? "";
      const pidColumn = header.trim().split(/\s+/).indexOf("PID");
      if (pidColumn < 0) throw new InvalidArgument("ps output has no PID column");
      console.log(header);
      for (const line of lines.slice(1)) {
        const pid = Number(line.trim().split(/\s+/)[pidColumn]);
        if (pids.includes(pid)) console.log(line);
      }
      return 0;
    },
  },
  pause: {
    flags: HELP,
    usage: "pause ID",
    summary: "freeze every process of the container",
    run: async (args, options) => {
      await pauseContainer(id(args, "pause"), options);
      return 0;
    },
  },
  resume: {
    flags: HELP,
    usage: "resume ID",
    summary: "thaw a paused container",
    run: async (args, options) => {
      await resumeContainer(id(args, "resume"), options);
      return 0;
    },
  },
  features: {
    flags: HELP,
    usage: "features",
    summary: "print the features this runtime implements (JSON)",
    run: async () => {
      let seccomp = true;
      try {
        const { libseccomp } = await import("../ffi/seccomp.ts");
        libseccomp();
      } catch {
        seccomp = false;
      }
      printJson(features(seccomp));
      return 0;
    },
  },
  spec: {
    flags: [
      {
        name: "bundle",
        aliases: ["b"],
        type: "string",
        value: "DIR",
        help: "where to write config.json (default: current directory)",
      },
      { name: "rootless", type: "boolean", help: "not supported yet" },
      ...HELP,
    ],
    usage: "spec [--bundle DIR]",
    summary: "write a default config.json",
    run: (args) => {
      if (boolFlag(args, "rootless")) {
        throw new NotImplemented("Rootless specs are not supported yet");
      }
      const path = resolve(stringFlag(args, "bundle") ?? ".", "config.json");
      try {
        Deno.writeTextFileSync(path, JSON.stringify(defaultSpec(), null, "\t") + "\n", {
          createNew: true,
        });
      } catch (err) {
        if (err instanceof Deno.errors.AlreadyExists) {
          throw new InvalidArgument(`File ${path} exists: remove it first`);
        }
        throw err;
      }
      return 0;
    },
  },
};

/** `run`: create, start, then (unless detached) relay signals and the terminal, wait, delete, and exit with the container's code. */
async function runContainer(args: ParsedArgs, options: RuntimeOptions): Promise<number> {
  const sys = libcSyscall();
  const containerId = id(args, "run");
  const detach = boolFlag(args, "detach");
  const consoleSocket = stringFlag(args, "console-socket");
  const pidFile = stringFlag(args, "pid-file");
  const bundle = stringFlag(args, "bundle") ?? Deno.cwd();
  const { loadSpec } = await import("./plan.ts");
  const spec = loadSpec(resolve(bundle));
  const wantsTerminal = spec.process?.terminal === true;
  if (wantsTerminal && detach && !consoleSocket) {
    throw new InvalidArgument(
      "Cannot allocate a terminal for a detached container without --console-socket",
    );
  }
  // Without a console socket, run keeps the pty master itself and relays it to its own stdio.
  let relay: [number, number] | undefined;
  if (wantsTerminal && !consoleSocket) relay = sys.socketpair(SOCK_STREAM);
  let pid: number;
  try {
    ({ pid } = await createContainer(containerId, {
      ...options,
      bundle,
      spec,
      preserveFds: preserveFds(args),
      ...(pidFile ? { pidFile } : {}),
      ...(relay
        ? { consoleSocketFd: relay[1] }
        : consoleSocket
        ? { consoleSocket: resolve(consoleSocket) }
        : {}),
    }));
  } catch (err) {
    if (relay) sys.close(relay[0]);
    throw err;
  }
  let master: number | undefined;
  if (relay) {
    master = sys.recvFds(relay[0], 256).fds[0];
    sys.close(relay[0]);
  }
  await startContainer(containerId, options);
  if (detach) return 0;

  const code = await waitForeground(pid, master);
  reportOom(containerId, options);
  if (!boolFlag(args, "keep")) {
    // As runc: the exit code is the container's even when the removal fails, which is said.
    try {
      await deleteContainer(containerId, { ...options, force: true });
    } catch (err) {
      console.error(`tug runtime: ${errorMessage(err)}`);
    }
  }
  return code;
}

/** `exec`: build the process (from --process or the container's own plus flags), start it, and unless detached wait for it. */
async function execCommand(args: ParsedArgs, options: RuntimeOptions): Promise<number> {
  const { execInContainer, execProcess } = await import("./exec.ts");
  const { loadSpec } = await import("./plan.ts");
  const sys = libcSyscall();
  const [containerId, ...command] = [...args.positionals, ...args.rest];
  if (!containerId) throw new InvalidArgument("exec needs a container id");
  let process: Process;
  const processFile = stringFlag(args, "process");
  if (processFile) {
    try {
      process = JSON.parse(Deno.readTextFileSync(processFile)) as Process;
    } catch (err) {
      throw new InvalidArgument(`Invalid --process ${processFile}: ${(err as Error).message}`);
    }
  } else {
    const { record } = inspect(containerId, options);
    const user = stringFlag(args, "user");
    let parsedUser: { uid: number; gid: number; additionalGids?: number[] } | undefined;
    if (user !== undefined) {
      const m = /^(\d+)(?::(\d+))?$/.exec(user);
      if (!m) {
        throw new InvalidArgument(
          `Invalid --user ${JSON.stringify(user)}: use UID[:GID] with numbers`,
        );
      }
      parsedUser = { uid: Number(m[1]), gid: Number(m[2] ?? 0) };
    }
    const gids = listFlag(args, "additional-gids").map((g) => {
      if (!/^\d+$/.test(g)) {
        throw new InvalidArgument(`Invalid --additional-gids ${JSON.stringify(g)}: not a number`);
      }
      return Number(g);
    });
    if (gids.length) parsedUser = { ...(parsedUser ?? { uid: 0, gid: 0 }), additionalGids: gids };
    const cwd = stringFlag(args, "cwd");
    process = execProcess(loadSpec(record.bundle).process, {
      args: command,
      env: listFlag(args, "env"),
      terminal: boolFlag(args, "tty"),
      capabilities: listFlag(args, "cap"),
      noNewPrivileges: boolFlag(args, "no-new-privs"),
      ...(cwd ? { cwd } : {}),
      ...(parsedUser ? { user: parsedUser } : {}),
    });
  }
  const detach = boolFlag(args, "detach");
  const consoleSocket = stringFlag(args, "console-socket");
  if (process.terminal && detach && !consoleSocket) {
    throw new InvalidArgument(
      "Cannot allocate a terminal for a detached process without --console-socket",
    );
  }
  let relay: [number, number] | undefined;
  if (process.terminal && !consoleSocket) relay = sys.socketpair(SOCK_STREAM);
  let pid: number;
  try {
    ({ pid } = await execInContainer(containerId, {
      ...options,
      process,
      preserveFds: preserveFds(args),
      ...(relay
        ? { consoleSocketFd: relay[1] }
        : consoleSocket
        ? { consoleSocket: resolve(consoleSocket) }
        : {}),
    }));
  } catch (err) {
    if (relay) sys.close(relay[0]);
    throw err;
  }
  const pidFile = stringFlag(args, "pid-file");
  if (pidFile) await writePidFile(resolve(pidFile), pid);
  let master: number | undefined;
  if (relay) {
    master = sys.recvFds(relay[0], 256).fds[0];
    sys.close(relay[0]);
  }
  if (detach) return 0;
  return await waitForeground(pid, master);
}

/** Waits for a foreground process of ours: relays its terminal and our signals, returns its exit code. */
async function waitForeground(pid: number, master: number | undefined): Promise<number> {
  const sys = libcSyscall();
  const forwarded = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2"] as const;
  const listeners = forwarded.map((name) => {
    const handler = () => {
      try {
        sys.kill(pid, SIGNALS[name]!);
      } catch {
        // exited
      }
    };
    Deno.addSignalListener(name, handler);
    return [name, handler] as const;
  });
  const { relayTerminal } = master !== undefined
    ? await import("./console.ts")
    : { relayTerminal: undefined };
  const stopRelay = master !== undefined && relayTerminal ? relayTerminal(master) : undefined;
  const { status } = await sys.waitpidAsync(pid);
  trace("run: exited");
  for (const [name, handler] of listeners) Deno.removeSignalListener(name, handler);
  await stopRelay?.();
  return exitCodeOf(status);
}

/** Says so on stderr when the OOM killer struck inside the container's cgroup. */
function reportOom(containerId: string, options: RuntimeOptions): void {
  try {
    const { record } = inspect(containerId, options);
    const kills = cgroupFor(record, libcSyscall()).oomKillCount();
    if (kills > 0) {
      console.error(
        `tug runtime: container ${
          JSON.stringify(containerId)
        } was killed by the OOM killer (${kills} process${kills > 1 ? "es" : ""} killed)`,
      );
    }
  } catch {
    // no cgroup left to ask
  }
}

function usage(): string {
  const width = Math.max(...Object.keys(SUBCOMMANDS).map((n) => n.length)) + 2;
  return [
    "Usage: tug runtime [global flags] COMMAND [flags] ARGS",
    "",
    "An OCI runtime compatible with runc: runs containers from OCI bundles.",
    "",
    "Commands:",
    ...Object.entries(SUBCOMMANDS).map(([n, s]) => `  ${n.padEnd(width)}${s.summary}`),
    "",
    "Global flags:",
    flagHelp(GLOBAL_FLAGS),
  ].join("\n");
}

function logLine(file: string | undefined, format: string, level: string, msg: string): void {
  if (!file) return;
  const time = new Date().toISOString();
  const line = format === "json"
    ? JSON.stringify({ level, msg, time })
    : `time="${time}" level=${level} msg=${JSON.stringify(msg)}`;
  try {
    Deno.writeTextFileSync(file, line + "\n", { append: true, create: true });
  } catch {
    // the log is best effort
  }
}

/** Entry point of `tug runtime`. */
export async function main(argv: string[]): Promise<number> {
  trace("runtime: main");
  let logFile: string | undefined;
  let logFormat = "text";
  let debug = false;
  try {
    const global = parseArgs(argv, GLOBAL_FLAGS, { stopAfterPositionals: 1, command: "runtime" });
    logFile = stringFlag(global, "log");
    logFormat = stringFlag(global, "log-format", "text")!;
    debug = boolFlag(global, "debug");
    if (logFormat !== "text" && logFormat !== "json") {
      throw new InvalidArgument(
        `Invalid --log-format: ${JSON.stringify(logFormat)} (use text or json)`,
      );
    }
    const name = global.positionals[0];
    if (boolFlag(global, "help") || name === undefined || name === "help") {
      console.log(usage());
      return name === undefined && !boolFlag(global, "help") ? 1 : 0;
    }
    if (boolFlag(global, "systemd-cgroup")) {
      throw new NotImplemented(
        "The systemd cgroup driver is not supported: drop --systemd-cgroup (tug uses cgroupfs)",
      );
    }
    const rootless = stringFlag(global, "rootless");
    if (rootless === "true") throw new NotImplemented("Rootless mode is not supported yet");
    const sub = SUBCOMMANDS[name];
    if (!sub) {
      throw new InvalidArgument(`Unknown runtime command ${JSON.stringify(name)}\n\n${usage()}`);
    }
    // ps and exec pass everything after the container id on (ps options, the command).
    const passThrough = name === "ps" || name === "exec";
    const args = parseArgs(global.rest, sub.flags, {
      command: name,
      ...(passThrough ? { stopAfterPositionals: 1 } : {}),
    });
    if (name === "ps") args.positionals.push(...args.rest);
    if (boolFlag(args, "help")) {
      console.log(
        `Usage: tug runtime ${sub.usage}\n\n${sub.summary}\n\nFlags:\n${flagHelp(sub.flags)}`,
      );
      return 0;
    }
    const options: RuntimeOptions = {
      root: resolve(stringFlag(global, "root") ?? DEFAULT_ROOT),
      // The kernel's slow path for cgroup attaches, started while we read the bundle.
      ...(name === "create" || name === "run" ? { cgroupArmed: armCgroupAttach() } : {}),
      warn: (m) => {
        console.error(`tug runtime: warning: ${m}`);
        logLine(logFile, logFormat, "warning", m);
      },
    };
    return await sub.run(args, options);
  } catch (err) {
    const message = errorMessage(err);
    console.error(`tug runtime: ${message}`);
    if (debug && err instanceof Error) console.error(err.stack);
    logLine(logFile, logFormat, "error", message);
    return 1;
  }
}
