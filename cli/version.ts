/**
 * `tug version`: the client's version and, when the daemon answers, the
 * daemon's.
 *
 * @module
 */

import { OCI_VERSION, VERSION } from "../mod.ts";
import { boolFlag } from "./args.ts";
import { connect, JSON_FLAG, printJson, runCommand } from "./_common.ts";

/** `tug version [--json]` */
export function main(args: string[]): Promise<number> {
  return runCommand(
    "version",
    {
      summary: "Print the client's and the daemon's versions",
      usage: "[flags]",
      flags: [JSON_FLAG],
    },
    args,
    async (parsed) => {
      const clientInfo = { version: VERSION, ociVersion: OCI_VERSION, deno: Deno.version.deno };
      using client = connect(parsed);
      if (boolFlag(parsed, "json")) {
        printJson({ client: clientInfo, server: await client.version() });
        return 0;
      }
      console.log(
        `Client:\n  Version:  ${VERSION}\n  OCI:      ${OCI_VERSION}\n  Deno:     ${clientInfo.deno}\n`,
      );
      const server = await client.version();
      console.log(
        `Server:\n  Version:  ${server.version}\n  API:      ${server.api}\n  OCI:      ${server.ociVersion}\n  Deno:     ${server.deno}`,
      );
      return 0;
    },
  );
}
