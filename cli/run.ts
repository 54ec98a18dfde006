/**
 * `tug run [flags] IMAGE ID [COMMAND [ARG...]]`: creates a container from an
 * image (pulled first when missing), starts its task attached to the
 * terminal, and exits with its exit code, as `ctr run` does. `-d` leaves it
 * running in the background (its output goes to its log); `--rm` removes
 * the task and the container once it exits.
 *
 * @module
 */

import { armCgroupAttach } from "../runtime/cgroups/arm.ts";
import {
  type CreateContainerRequest,
  FailedPrecondition,
  InvalidArgument,
  NotFound,
  type TugClient,
} from "../mod.ts";
import { trace } from "../trace.ts";
import { boolFlag, type ParsedArgs, stringFlag } from "./args.ts";
import { connect, runCommand } from "./_common.ts";
import { CONTAINER_FLAGS, createRequest, startAttached } from "./_container.ts";

/** Creates the container; when its image is missing, pulls it (with progress bars) and tries again. */
async function createPulling(
  client: TugClient,
  request: CreateContainerRequest,
  args: ParsedArgs,
): Promise<void> {
  try {
    await client.containers.create(request);
    return;
  } catch (err) {
    if (!(err instanceof NotFound)) throw err;
    const present = await client.images.get(request.image).then(() => true, (e) => {
      if (e instanceof NotFound) return false;
      throw e;
    });
    if (present) throw err; // something else was not found
  }
  const { progressView, pullProgress } = await import("./_progress.ts");
  const encoder = new TextEncoder();
  const view = progressView({
    write: (text) => void Deno.stderr.writeSync(encoder.encode(text)),
    terminal: Deno.stderr.isTerminal(),
  });
  console.error(`${request.image}: not present, pulling`);
  try {
    await client.images.pull(request.image, {
      onProgress: pullProgress(view),
      ...(boolFlag(args, "plain-http") ? { plainHttp: true } : {}),
    });
  } finally {
    view.finish();
  }
  await client.containers.create(request);
}

/**
 * Removes the container and its task, killed first (or left alone while it
 * runs, with `unlessRunning`); best effort: reported, not thrown.
 */
export async function removeContainer(
  client: TugClient,
  id: string,
  options: { unlessRunning?: boolean } = {},
): Promise<void> {
  try {
    await client.containers.delete(id, { force: !options.unlessRunning });
  } catch (err) {
    if (options.unlessRunning && err instanceof FailedPrecondition) return;
    if (!(err instanceof NotFound)) {
      console.error(`tug: remove container ${id}: ${(err as Error).message}`);
    }
  }
}

/** `tug run` */
export function main(args: string[]): Promise<number> {
  return runCommand(
    "run",
    {
      summary: "Create a container from an image and run it",
      usage: "[flags] IMAGE ID [COMMAND [ARG...]]",
      flags: [
        { name: "rm", type: "boolean", help: "Remove the container when its task exits" },
        {
          name: "detach",
          aliases: ["d"],
          type: "boolean",
          help: "Leave the task running in the background",
        },
        { name: "plain-http", type: "boolean", help: "Pull a missing image over plain HTTP" },
        ...CONTAINER_FLAGS,
      ],
      help: "Ctrl-P Ctrl-Q detaches from a terminal (-t); the container keeps running.",
      stopAfterPositionals: 2,
    },
    args,
    async (parsed) => {
      const [image, id] = parsed.positionals;
      if (image === undefined || id === undefined) {
        throw new InvalidArgument("tug run needs IMAGE and ID");
      }
      // The daemon's shim will join a new init to its cgroups: start the kernel's slow path for
      // that now (see runtime/cgroups/arm.ts; a no-op without the rights to do it).
      void armCgroupAttach();
      const detach = boolFlag(parsed, "detach");
      const rm = boolFlag(parsed, "rm");
      if (detach && rm) {
        throw new InvalidArgument("tug run: --rm and --detach cannot be used together");
      }
      if (
        rm && stringFlag(parsed, "restart") !== undefined && stringFlag(parsed, "restart") !== "no"
      ) {
        throw new InvalidArgument(
          "tug run: --rm and --restart cannot be used together (as Docker)",
        );
      }
      const terminal = boolFlag(parsed, "tty");
      if (terminal && !detach && !Deno.stdin.isTerminal()) {
        throw new InvalidArgument("tug run -t: the input device is not a terminal");
      }
      using client = connect(parsed);
      trace("run: parsed");
      const request = await createRequest(parsed, image, id, parsed.rest);
      await createPulling(client, request, parsed);
      trace("run: created");
      if (detach) {
        try {
          await client.tasks.start(id);
        } catch (err) {
          await removeContainer(client, id).catch(() => {});
          throw err;
        }
        return 0;
      }
      let code: number | undefined;
      try {
        code = await startAttached(client, id, {
          terminal,
          stdin: terminal || boolFlag(parsed, "interactive"),
          ...(rm ? { remove: true } : {}),
        });
      } catch (err) {
        // A start that failed leaves the container to remove; a task that runs on (the wait failed:
        // its shim died, the daemon stopped) is removed by the daemon once it exits.
        if (rm) await removeContainer(client, id, { unlessRunning: true });
        throw err;
      }
      if (code === undefined) return 0; // detached
      trace("run: done");
      return code;
    },
  );
}
