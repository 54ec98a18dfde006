/**
 * `tug events`: prints the daemon's events as they happen, one per line:
 * `TIMESTAMP NAMESPACE TOPIC PAYLOAD`, or JSON lines with `--json`. Every
 * namespace's events unless `-n`/`TUG_NAMESPACE` names one.
 *
 * @module
 */

import { boolFlag, listFlag } from "./args.ts";
import { connect, globalOptions, JSON_FLAG, positionals, runCommand } from "./_common.ts";

/** `tug events [--topic T]... [--json]` */
export function main(args: string[]): Promise<number> {
  return runCommand(
    "events",
    {
      summary: "Print events as they happen (every namespace's, unless one is named)",
      usage: "[flags]",
      flags: [
        {
          name: "topic",
          aliases: ["t"],
          type: "list",
          value: "TOPIC",
          help: "Only this topic, or a prefix ending in * (repeatable)",
        },
        JSON_FLAG,
      ],
    },
    args,
    async (parsed) => {
      positionals(parsed, "tug events", "no arguments", 0);
      const g = globalOptions(parsed);
      using client = connect(parsed);
      const topics = listFlag(parsed, "topic");
      const stream = client.events.subscribe({
        ...(g.namespaceGiven ? { namespace: g.namespace } : {}),
        ...(topics.length ? { topics } : {}),
      });
      const json = boolFlag(parsed, "json");
      const stop = () => stream.close();
      Deno.addSignalListener("SIGINT", stop);
      try {
        for await (const e of stream) {
          console.log(
            json
              ? JSON.stringify(e)
              : `${e.timestamp} ${e.namespace} ${e.topic} ${JSON.stringify(e.payload)}`,
          );
        }
      } finally {
        Deno.removeSignalListener("SIGINT", stop);
      }
      return 0;
    },
  );
}
