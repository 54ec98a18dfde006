/**
 * The `tug` command: one binary that is the CLI, the daemon, the shim and the
 * OCI runtime. Each subcommand lives in its own module, loaded with a dynamic
 * `import()` so that a container start never pays for the daemon's code.
 *
 * @module
 */

import { errorMessage, TugError } from "./errors.ts";
import { VERSION } from "./version.ts";
import { longGlobalFlag } from "./cli/args.ts";

/** What a subcommand module exports. */
export interface CommandModule {
  /** Runs the subcommand with its arguments; resolves to the exit code. */
  main(args: string[]): Promise<number> | number;
}

interface Command {
  load: () => Promise<CommandModule>;
  summary: string;
  hidden?: boolean;
}

const COMMANDS: Record<string, Command> = {
  runtime: {
    load: () => import("./runtime/cli.ts"),
    summary: "Run OCI bundles directly (runc-compatible)",
  },
  shim: {
    load: () => import("./shim/main.ts"),
    summary: "Supervise a group's containers (started by the daemon)",
    hidden: true,
  },
  images: {
    load: () => import("./cli/images.ts"),
    summary: "Manage images (pull, list, remove, import, export, tag, push, prune, usage)",
  },
  i: { load: () => import("./cli/images.ts"), summary: "", hidden: true },
  image: { load: () => import("./cli/images.ts"), summary: "", hidden: true },
  containers: {
    load: () => import("./cli/containers.ts"),
    summary: "Manage containers (create, list, info, delete, start, exec, logs)",
  },
  container: { load: () => import("./cli/containers.ts"), summary: "", hidden: true },
  c: { load: () => import("./cli/containers.ts"), summary: "", hidden: true },
  tasks: {
    load: () => import("./cli/tasks.ts"),
    summary: "Manage tasks (start, list, kill, exec, ps, pause, resume, metrics, attach, delete)",
  },
  task: { load: () => import("./cli/tasks.ts"), summary: "", hidden: true },
  t: { load: () => import("./cli/tasks.ts"), summary: "", hidden: true },
  run: {
    load: () => import("./cli/run.ts"),
    summary: "Create a container from an image and run it",
  },
  snapshots: {
    load: () => import("./cli/snapshots.ts"),
    summary: "Inspect snapshots (list, usage)",
  },
  snapshot: { load: () => import("./cli/snapshots.ts"), summary: "", hidden: true },
  content: { load: () => import("./cli/content.ts"), summary: "Inspect the content store (list)" },
  namespaces: {
    load: () => import("./cli/namespaces.ts"),
    summary: "Manage namespaces (create, list, remove)",
  },
  namespace: { load: () => import("./cli/namespaces.ts"), summary: "", hidden: true },
  ns: { load: () => import("./cli/namespaces.ts"), summary: "", hidden: true },
  events: {
    load: () => import("./cli/events.ts"),
    summary: "Print the daemon's events as they happen",
  },
  info: { load: () => import("./cli/info.ts"), summary: "Show what the daemon runs with" },
  system: { load: () => import("./cli/system.ts"), summary: "System-wide reports (df)" },
  version: {
    load: () => import("./cli/version.ts"),
    summary: "Print the client's and the daemon's versions",
  },
  config: {
    load: () => import("./cli/config.ts"),
    summary: "Print the default or the effective daemon configuration",
  },
  daemon: { load: () => import("./cli/daemon.ts"), summary: "Run the tug daemon" },
  "install-service": {
    load: () => import("./cli/install_service.ts"),
    summary: "Install tug's systemd unit and default configuration",
  },
};

/** Global flags that may come before the command (`tug -n ns images ls`); each takes a value. */
const GLOBAL_FLAGS = new Set(["-a", "--address", "-n", "--namespace", "--timeout"]);

function usage(): string {
  const names = Object.entries(COMMANDS).filter(([, c]) => !c.hidden);
  const width = Math.max(...names.map(([n]) => n.length)) + 2;
  return [
    "Usage: tug COMMAND [ARGS...]",
    "",
    "Commands:",
    ...names.map(([n, c]) => `  ${n.padEnd(width)}${c.summary}`),
    "",
    "Run 'tug COMMAND --help' for a command's flags.",
  ].join("\n");
}

/** Dispatches `args` to a subcommand and returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const globals: string[] = [];
  while (args.length > 0 && GLOBAL_FLAGS.has(args[0]!.split("=")[0]!)) {
    const n = args[0]!.includes("=") ? 1 : 2;
    globals.push(longGlobalFlag(args[0]!), ...args.slice(1, n));
    args = args.slice(n);
  }
  const [name, ...tail] = args;
  const rest = [...globals, ...tail];
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    console.log(usage());
    return name === undefined ? 1 : 0;
  }
  if (name === "--version" || name === "-v") {
    console.log(`tug ${VERSION}`);
    return 0;
  }
  const command = COMMANDS[name];
  if (!command) {
    console.error(`tug: unknown command ${JSON.stringify(name)}\n\n${usage()}`);
    return 2;
  }
  const module = await command.load();
  return await module.main(rest);
}

if (import.meta.main) {
  let code: number;
  try {
    code = await main(Deno.args);
  } catch (err) {
    if (err instanceof Deno.errors.BrokenPipe) {
      // The reader of our output went away (`tug containers logs X | head -1`): quiet, with the
      // status a process ended by SIGPIPE has, as other tools.
      Deno.exit(141);
    }
    const message = err instanceof TugError ? err.message : errorMessage(err);
    console.error(`tug: ${message}`);
    if (Deno.env.get("TUG_DEBUG") && err instanceof Error) console.error(err.stack);
    code = 1;
  }
  Deno.exit(code);
}
