/**
 * `tug system df`: disk usage by kind, as `docker system df` shows it.
 *
 * @module
 */

import { humanSize } from "../util/units.ts";
import { boolFlag } from "./args.ts";
import {
  connect,
  JSON_FLAG,
  positionals,
  printJson,
  printTable,
  runGroup,
  type Verb,
} from "./_common.ts";

function pct(part: number, whole: number): string {
  return whole > 0 ? ` (${Math.round((part / whole) * 100)}%)` : "";
}

/** The system verbs. */
export const VERBS: Record<string, Verb> = {
  df: {
    summary: "Show disk usage by images, containers, content and snapshots",
    usage: "[flags]",
    flags: [JSON_FLAG],
    async run(args, command) {
      positionals(args, command, "no arguments", 0);
      using client = connect(args);
      const df = await client.system.df();
      if (boolFlag(args, "json")) {
        printJson(df);
        return 0;
      }
      printTable(["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"], [
        [
          "Images",
          String(df.images.count),
          String(df.images.active),
          humanSize(df.images.size),
          `${humanSize(df.images.reclaimable)}${pct(df.images.reclaimable, df.images.size)}`,
        ],
        ["Containers", String(df.containers.count), "-", "-", "-"],
        ["Content", String(df.content.count), "-", humanSize(df.content.size), "-"],
        ["Snapshots", String(df.snapshots.count), "-", humanSize(df.snapshots.size), "-"],
        ["Ingests", String(df.ingests.count), "-", humanSize(df.ingests.size), "-"],
      ]);
      console.log(
        `\ntotal ${humanSize(df.size)}, reclaimable now by garbage collection: ${
          humanSize(df.reclaimable)
        }`,
      );
      return 0;
    },
  },
};

/** `tug system …` */
export function main(args: string[]): Promise<number> {
  return runGroup("system", "System-wide reports", VERBS, args);
}
