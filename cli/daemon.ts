/**
 * `tug daemon`: reads the configuration (default /etc/tug/config.toml; a
 * file named with --config must exist), applies the flags on top, and runs
 * the daemon until SIGTERM or SIGINT.
 *
 * @module
 */

import { type ConfigOverrides, DEFAULT_CONFIG_PATH, loadConfig } from "../daemon/config.ts";
import { type FlagSpec, type ParsedArgs, stringFlag } from "./args.ts";
import { runCommand } from "./_common.ts";

/** The daemon's flags (also accepted by `tug config dump`). */
export const DAEMON_FLAGS: readonly FlagSpec[] = [
  {
    name: "config",
    aliases: ["c"],
    type: "string",
    value: "FILE",
    help: `The configuration file (default ${DEFAULT_CONFIG_PATH})`,
  },
  { name: "root", type: "string", value: "DIR", help: "Persistent data directory (root)" },
  { name: "state", type: "string", value: "DIR", help: "Runtime state directory (state)" },
  {
    name: "address",
    aliases: ["a"],
    type: "string",
    value: "SOCK",
    help: "The API socket (api.address)",
  },
  {
    name: "log-level",
    aliases: ["l"],
    type: "string",
    value: "LEVEL",
    help: "error, warn, info or debug (debug.level)",
  },
  {
    name: "metrics-address",
    type: "string",
    value: "HOST:PORT",
    help: "Serve /metrics here (metrics.address)",
  },
];

/** The configuration overrides the flags give. */
export function overridesFrom(args: ParsedArgs): ConfigOverrides {
  const o: ConfigOverrides = {};
  const root = stringFlag(args, "root");
  const state = stringFlag(args, "state");
  const address = stringFlag(args, "address");
  const logLevel = stringFlag(args, "log-level");
  const metricsAddress = stringFlag(args, "metrics-address");
  if (root !== undefined) o.root = root;
  if (state !== undefined) o.state = state;
  if (address !== undefined) o.address = address;
  if (logLevel !== undefined) o.logLevel = logLevel;
  if (metricsAddress !== undefined) o.metricsAddress = metricsAddress;
  return o;
}

/** `tug daemon [flags]` */
export function main(args: string[]): Promise<number> {
  return runCommand(
    "daemon",
    {
      summary: "Run the tug daemon (the API, images, containers)",
      usage: "[flags]",
      flags: DAEMON_FLAGS,
      global: false,
    },
    args,
    async (parsed) => {
      const file = stringFlag(parsed, "config");
      const { config, warnings } = await loadConfig({
        path: file ?? DEFAULT_CONFIG_PATH,
        required: file !== undefined,
        ...overridesFrom(parsed),
      });
      const { createLogger } = await import("../daemon/log.ts");
      const log = createLogger(config.debug.level);
      for (const w of warnings) log.warn(w);
      const { runDaemon } = await import("../daemon/mod.ts");
      await runDaemon({ config, log });
      return 0;
    },
  );
}
