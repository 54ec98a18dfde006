/**
 * `tug content list` (ls), shaped like `ctr content ls`.
 *
 * @module
 */

import { humanSize } from "../util/units.ts";
import { boolFlag } from "./args.ts";
import {
  age,
  connect,
  formatLabels,
  JSON_FLAG,
  positionals,
  printJson,
  printTable,
  runGroup,
  type Verb,
} from "./_common.ts";

/** The content verbs. */
export const VERBS: Record<string, Verb> = {
  list: {
    summary: "List the blobs in the content store",
    usage: "[flags]",
    aliases: ["ls"],
    flags: [JSON_FLAG, {
      name: "quiet",
      aliases: ["q"],
      type: "boolean",
      help: "Print only the digests",
    }],
    async run(args, command) {
      positionals(args, command, "no arguments", 0);
      using client = connect(args);
      const list = await client.content.list();
      if (boolFlag(args, "json")) printJson(list);
      else if (boolFlag(args, "quiet")) { for (const c of list) console.log(c.digest); }
      else {
        printTable(
          ["DIGEST", "SIZE", "AGE", "LABELS"],
          list.map((c) => [c.digest, humanSize(c.size), age(c.createdAt), formatLabels(c.labels)]),
        );
      }
      return 0;
    },
  },
};

/** `tug content …` */
export function main(args: string[]): Promise<number> {
  return runGroup("content", "Inspect the content store", VERBS, args);
}
