/**
 * `tug info`: what the daemon runs with.
 *
 * @module
 */

import { boolFlag } from "./args.ts";
import { connect, JSON_FLAG, printJson, runCommand } from "./_common.ts";

/** `tug info [--json]` */
export function main(args: string[]): Promise<number> {
  return runCommand(
    "info",
    {
      summary: "Show the daemon's directories, snapshotters, cgroups and shims",
      usage: "[flags]",
      flags: [JSON_FLAG],
    },
    args,
    async (parsed) => {
      using client = connect(parsed);
      const info = await client.info();
      if (boolFlag(parsed, "json")) {
        printJson(info);
        return 0;
      }
      const seccomp = (info.runtime.linux as { seccomp?: { enabled?: boolean } } | undefined)
        ?.seccomp?.enabled;
      const rows: Array<[string, string]> = [
        ["Version", info.version],
        ["Address", info.address],
        ["PID", String(info.pid)],
        ["Started", info.startedAt],
        ["Root", info.root],
        ["State", info.state],
        [
          "Snapshotters",
          info.snapshotters.map((s) => (s === info.defaultSnapshotter ? `${s} (default)` : s)).join(
            ", ",
          ),
        ],
        [
          "Cgroups",
          `${info.cgroups.mode} at ${info.cgroups.root}: ${info.cgroups.controllers.join(" ")}`,
        ],
        ["Seccomp", seccomp ? "available" : "not available"],
        ["Kernel", `${info.kernel} (${info.arch})`],
        ["Shims", info.shims.length ? "" : "none"],
      ];
      const width = Math.max(...rows.map(([k]) => k.length)) + 2;
      for (const [k, v] of rows) console.log(`${(k + ":").padEnd(width)}${v}`.trimEnd());
      for (const s of info.shims) {
        console.log(
          `  ${s.group}: pid ${s.pid}, ${s.containers} containers, ${s.address}`,
        );
      }
      return 0;
    },
  );
}
