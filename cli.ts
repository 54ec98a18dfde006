/**
 * The `tug` command: one binary that is the CLI, the daemon, the shim and the
 * OCI runtime. Each subcommand lives in its own module, loaded with a dynamic
 * `import()` so that a container start never pays for the daemon's code.
 *
 * @module
 */

import { errorMessage, TugError } from "./errors.ts";
import { VERSION } from "./version.ts";

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
  runtime: { load: () => import("./runtime/cli.ts"), summary: "Run OCI bundles directly (runc-compatible)" },
  shim: { load: () => import("./shim/main.ts"), summary: "Supervise a group's containers (started by the daemon)", hidden: true },
  version: {
    load: () => Promise.resolve({ main: () => (console.log(`tug ${VERSION}`), 0) }),
    summary: "Print the version",
  },
};

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
  const [name, ...rest] = args;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    console.log(usage());
    return name === undefined ? 1 : 0;
  }
  if (name === "--version" || name === "-v") return COMMANDS.version!.load().then((m) => m.main([]));
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
    const message = err instanceof TugError ? err.message : errorMessage(err);
    console.error(`tug: ${message}`);
    if (Deno.env.get("TUG_DEBUG") && err instanceof Error) console.error(err.stack);
    code = 1;
  }
  Deno.exit(code);
}
