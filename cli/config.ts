/**
 * `tug config default` prints the complete default configuration file, a
 * comment per key; `tug config dump` prints the effective configuration: the
 * file (default /etc/tug/config.toml) with the daemon's flags on top. Both
 * run without the daemon.
 *
 * @module
 */

import {
  applyOverrides,
  DEFAULT_CONFIG_PATH,
  loadConfig,
  renderConfig,
  renderDefaultConfig,
} from "../daemon/config.ts";
import { stringFlag } from "./args.ts";
import { positionals, runGroup, type Verb } from "./_common.ts";
import { DAEMON_FLAGS, overridesFrom } from "./daemon.ts";

/** The config verbs. */
export const VERBS: Record<string, Verb> = {
  default: {
    summary: "Print the default configuration file",
    usage: "",
    flags: [],
    run(args, command) {
      positionals(args, command, "no arguments", 0);
      Deno.stdout.writeSync(new TextEncoder().encode(renderDefaultConfig()));
      return 0;
    },
  },
  dump: {
    summary: "Print the effective configuration: the file with the daemon's flags on top",
    usage: "[--config FILE] [daemon flags]",
    flags: DAEMON_FLAGS,
    async run(args, command) {
      positionals(args, command, "no arguments", 0);
      const file = stringFlag(args, "config");
      const { config, warnings } = await loadConfig({
        path: file ?? DEFAULT_CONFIG_PATH,
        required: file !== undefined,
      });
      for (const w of warnings) console.error(`warning: ${w}`);
      applyOverrides(config, overridesFrom(args));
      Deno.stdout.writeSync(
        new TextEncoder().encode(
          renderConfig(
            config,
            `Effective tug configuration (from ${file ?? DEFAULT_CONFIG_PATH} and flags).`,
          ),
        ),
      );
      return 0;
    },
  },
};

/** `tug config …` */
export function main(args: string[]): Promise<number> {
  return runGroup("config", "Show the daemon's configuration", VERBS, args);
}
