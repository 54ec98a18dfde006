/**
 * `tug install-service`: writes the systemd unit for `tug daemon` and the
 * default configuration file (only when there is none).
 *
 * @module
 */

import { installService, UNIT_PATH } from "../daemon/service_unit.ts";
import { stringFlag } from "./args.ts";
import { positionals, runCommand } from "./_common.ts";

/** `tug install-service [--root-dir DIR]` */
export function main(args: string[]): Promise<number> {
  return runCommand(
    "install-service",
    {
      summary:
        `Write the systemd unit (${UNIT_PATH}) and the default /etc/tug/config.toml (when absent)`,
      usage: "[flags]",
      flags: [{
        name: "root-dir",
        type: "string",
        value: "DIR",
        help: "Write under DIR instead of / (for images and tests)",
      }],
      global: false,
    },
    args,
    async (parsed) => {
      positionals(parsed, "tug install-service", "no arguments", 0);
      const rootDir = stringFlag(parsed, "root-dir");
      const r = await installService(rootDir ? { rootDir } : {});
      console.log(`wrote ${r.unit}`);
      console.log(
        r.config.written ? `wrote ${r.config.path}` : `kept ${r.config.path} (it exists)`,
      );
      if (!rootDir || rootDir === "/") {
        console.log("now run: systemctl daemon-reload && systemctl enable --now tug");
      }
      return 0;
    },
  );
}
