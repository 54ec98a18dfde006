/**
 * `tug run [flags] IMAGE ID [COMMAND [ARG...]]`: creates a container from an
 * image (pulled first when missing), starts its task attached to the
 * terminal, and exits with its exit code, as `ctr run` does. `-d` leaves it
 * running in the background (its output goes to its log); `--rm` removes
 * the task and the container once it exits.
 *
 * @module
 */

import { InvalidArgument, NotFound, type TugClient } from "../mod.ts";
import { boolFlag, type ParsedArgs } from "./args.ts";
import { connect, runCommand } from "./_common.ts";
import { CONTAINER_FLAGS, createRequest, startAttached } from "./_container.ts";

/** Pulls `image` when the namespace has no image of that name, with the pull's progress bars. */
async function ensureImage(client: TugClient, image: string, args: ParsedArgs): Promise<void> {
  try {
    await client.images.get(image);
    return;
  } catch (err) {
    if (!(err instanceof NotFound)) throw err;
  }
  const { progressView, pullProgress } = await import("./_progress.ts");
  const encoder = new TextEncoder();
  const view = progressView({
    write: (text) => void Deno.stderr.writeSync(encoder.encode(text)),
    terminal: Deno.stderr.isTerminal(),
  });
  console.error(`${image}: not present, pulling`);
  try {
    await client.images.pull(image, {
      onProgress: pullProgress(view),
      ...(boolFlag(args, "plain-http") ? { plainHttp: true } : {}),
    });
  } finally {
    view.finish();
  }
}

/** Removes the task and the container (best effort: reported, not thrown). */
export async function removeContainer(client: TugClient, id: string): Promise<void> {
  try {
    await client.tasks.delete(id, { force: true });
  } catch (err) {
    if (!(err instanceof NotFound)) {
      console.error(`tug: remove task ${id}: ${(err as Error).message}`);
    }
  }
  try {
    await client.containers.delete(id);
  } catch (err) {
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
      const detach = boolFlag(parsed, "detach");
      const rm = boolFlag(parsed, "rm");
      if (detach && rm) {
        throw new InvalidArgument("tug run: --rm and --detach cannot be used together");
      }
      const terminal = boolFlag(parsed, "tty");
      if (terminal && !detach && !Deno.stdin.isTerminal()) {
        throw new InvalidArgument("tug run -t: the input device is not a terminal");
      }
      using client = connect(parsed);
      const request = await createRequest(parsed, image, id, parsed.rest);
      await ensureImage(client, image, parsed);
      await client.containers.create(request);
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
        });
      } catch (err) {
        if (rm) await removeContainer(client, id);
        throw err;
      }
      if (code === undefined) return 0; // detached
      if (rm) await removeContainer(client, id);
      return code;
    },
  );
}
