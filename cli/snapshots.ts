/**
 * `tug snapshots`: list (ls) and usage, shaped like `ctr snapshots`.
 *
 * @module
 */

import { NotFound } from "../mod.ts";
import { humanSize } from "../util/units.ts";
import { boolFlag, type FlagSpec, stringFlag } from "./args.ts";
import {
  connect,
  JSON_FLAG,
  positionals,
  printJson,
  printTable,
  runGroup,
  type Verb,
} from "./_common.ts";

const SNAPSHOTTER: FlagSpec = {
  name: "snapshotter",
  type: "string",
  value: "NAME",
  help: "The snapshotter (default: the daemon's)",
};

function options(snapshotter: string | undefined) {
  return snapshotter ? { snapshotter } : {};
}

/** The snapshot verbs. */
export const VERBS: Record<string, Verb> = {
  list: {
    summary: "List snapshots",
    usage: "[flags]",
    aliases: ["ls"],
    flags: [SNAPSHOTTER, JSON_FLAG],
    async run(args, command) {
      positionals(args, command, "no arguments", 0);
      using client = connect(args);
      const list = await client.snapshots.list(options(stringFlag(args, "snapshotter")));
      if (boolFlag(args, "json")) printJson(list);
      else printTable(["KEY", "PARENT", "KIND"], list.map((s) => [s.name, s.parent ?? "", s.kind]));
      return 0;
    },
  },
  usage: {
    summary: "Show the disk usage of snapshots",
    usage: "[flags] [KEY...]",
    flags: [SNAPSHOTTER, JSON_FLAG],
    async run(args) {
      using client = connect(args);
      const snapshotter = stringFlag(args, "snapshotter");
      let list = await client.snapshots.usage(options(snapshotter));
      const wanted = args.positionals;
      // A key that is not there is an error (as ctr's "not found"), not an empty table.
      const missing = wanted.filter((key) => !list.some((u) => u.name === key));
      const notFound = (key: string) =>
        `No such snapshot ${key}${snapshotter ? ` in snapshotter ${snapshotter}` : ""}`;
      if (missing.length === wanted.length && missing.length === 1) {
        throw new NotFound(notFound(missing[0]!));
      }
      if (wanted.length) list = list.filter((u) => wanted.includes(u.name));
      if (boolFlag(args, "json")) printJson(list);
      else {printTable(
          ["KEY", "SIZE", "INODES"],
          list.map((u) => [u.name, humanSize(u.size), String(u.inodes)]),
        );}
      for (const key of missing) console.error(`tug: ${notFound(key)}`);
      return missing.length ? 1 : 0;
    },
  },
};

/** `tug snapshots …` */
export function main(args: string[]): Promise<number> {
  return runGroup("snapshots", "Inspect snapshots", VERBS, args);
}
