/**
 * `tug namespaces`: create, list (ls), remove (rm), shaped like
 * `ctr namespaces`.
 *
 * @module
 */

import { InvalidArgument } from "../mod.ts";
import { boolFlag } from "./args.ts";
import {
  connect,
  forEachName,
  formatLabels,
  JSON_FLAG,
  positionals,
  printJson,
  printTable,
  runGroup,
  type Verb,
} from "./_common.ts";

function parseLabels(items: string[]): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const item of items) {
    const i = item.indexOf("=");
    if (i <= 0) {
      throw new InvalidArgument(`Invalid label ${JSON.stringify(item)}: expected KEY=VALUE`);
    }
    labels[item.slice(0, i)] = item.slice(i + 1);
  }
  return labels;
}

/** The namespace verbs. */
export const VERBS: Record<string, Verb> = {
  create: {
    summary: "Create a namespace",
    usage: "[flags] NAME [KEY=VALUE...]",
    flags: [],
    async run(args, command) {
      const [name, ...labels] = positionals(args, command, "NAME [KEY=VALUE...]", 1, Infinity);
      using client = connect(args);
      const ns = await client.namespaces.create(
        name!,
        labels.length ? { labels: parseLabels(labels) } : {},
      );
      console.log(ns.name);
      return 0;
    },
  },
  list: {
    summary: "List namespaces",
    usage: "[flags]",
    aliases: ["ls"],
    flags: [JSON_FLAG, {
      name: "quiet",
      aliases: ["q"],
      type: "boolean",
      help: "Print only the names",
    }],
    async run(args, command) {
      positionals(args, command, "no arguments", 0);
      using client = connect(args);
      const list = await client.namespaces.list();
      if (boolFlag(args, "json")) printJson(list);
      else if (boolFlag(args, "quiet")) { for (const n of list) console.log(n.name); }
      else printTable(["NAME", "LABELS"], list.map((n) => [n.name, formatLabels(n.labels)]));
      return 0;
    },
  },
  remove: {
    summary: "Remove empty namespaces",
    usage: "[flags] NAME [NAME...]",
    aliases: ["rm"],
    flags: [],
    async run(args, command) {
      const names = positionals(args, command, "at least one NAME", 1, Infinity);
      using client = connect(args);
      return await forEachName(names, async (name) => {
        await client.namespaces.remove(name);
        console.log(name);
      });
    },
  },
};

/** `tug namespaces …` */
export function main(args: string[]): Promise<number> {
  return runGroup("namespaces", "Manage namespaces", VERBS, args);
}
