/**
 * `tug shim --group G --state DIR` (hidden): the long-lived parent of a
 * group's containers. Started by the daemon; detaches into its own session,
 * becomes child subreaper, serves the shim protocol (shim/rpc.ts) on
 * `<state>/shims/<group>/shim.sock`, and exits once it has held no container
 * and no connection for `--idle-exit` seconds. It outlives the daemon:
 * SIGTERM is ignored while it holds containers.
 *
 * @module
 */

import { boolFlag, parseArgs, stringFlag } from "../cli/args.ts";
import { FailedPrecondition, InvalidArgument } from "../errors.ts";
import {
  O_APPEND,
  O_CLOEXEC,
  O_CREAT,
  O_WRONLY,
  PR_SET_CHILD_SUBREAPER,
} from "../ffi/constants.ts";
import { libcSyscall } from "../ffi/libc.ts";
import { join } from "../util/path.ts";
import { collectSoon } from "../util/gc.ts";
import { RpcServer } from "./rpc.ts";
import { type CreateParams, ShimService } from "./service.ts";

const GROUP = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
/** Requests that leave garbage behind (util/gc.ts collects it after a quiet second); not the polls (state, stats, ps). */
const COLLECT_AFTER = new Set(["create", "start", "exec", "delete"]);

function str(params: Record<string, unknown>, name: string): string {
  const v = params[name];
  if (typeof v !== "string" || v === "") {
    throw new InvalidArgument(`Invalid shim request: ${name} must be a non-empty string`);
  }
  return v;
}

function optStr(params: Record<string, unknown>, name: string): string | undefined {
  const v = params[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string") {
    throw new InvalidArgument(`Invalid shim request: ${name} must be a string`);
  }
  return v;
}

/** The directory of a shim group under the daemon's state directory. */
export function shimDir(state: string, group: string): string {
  return join(state, "shims", group);
}

/** Removes `dir` and the directories under it if no file is left in them; files are never removed. */
function removeEmptyDirs(dir: string): boolean {
  let empty = true;
  try {
    for (const e of Deno.readDirSync(dir)) {
      if (!(e.isDirectory && removeEmptyDirs(join(dir, e.name)))) empty = false;
    }
    if (empty) Deno.removeSync(dir);
  } catch {
    return false;
  }
  return empty;
}

/** Entry point of `tug shim`. */
export async function main(argv: string[]): Promise<number> {
  const args = parseArgs(argv, [
    { name: "group", type: "string" },
    { name: "state", type: "string" },
    { name: "idle-exit", type: "string" },
    { name: "foreground", type: "boolean" },
  ], { command: "shim" });
  const group = stringFlag(args, "group");
  const state = stringFlag(args, "state");
  if (!group || !GROUP.test(group)) {
    throw new InvalidArgument(`Invalid --group ${JSON.stringify(group)}`);
  }
  if (!state) throw new InvalidArgument("shim needs --state");
  const idleExit = Number(stringFlag(args, "idle-exit", "60"));
  const dir = shimDir(state, group);
  Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const sys = libcSyscall();
  if (!boolFlag(args, "foreground")) {
    try {
      sys.setsid();
    } catch {
      // a session leader already
    }
  }
  // Everything the shim says goes to its own log, whoever started it.
  const logFd = sys.open(join(dir, "shim.log"), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600);
  sys.dup2(logFd, 2);
  sys.close(logFd);
  sys.prctl(PR_SET_CHILD_SUBREAPER, 1);

  const socket = join(dir, "shim.sock");
  try {
    const conn = await Deno.connect({ transport: "unix", path: socket });
    conn.close();
    throw new FailedPrecondition(
      `A shim for group ${JSON.stringify(group)} is running already at ${socket}`,
    );
  } catch (err) {
    if (err instanceof FailedPrecondition) throw err;
    await Deno.remove(socket).catch(() => {}); // stale
  }

  // Declared before the service, whose publish callback needs it, and assigned once after.
  // deno-lint-ignore prefer-const
  let server: RpcServer | undefined;
  const service = new ShimService({ dir, publish: (e) => server?.publish(e) });
  await service.open();
  server = new RpcServer(socket, async (method, p) => {
    try {
      return await handle(method, p);
    } catch (err) {
      // The runtime knows a container as "<namespace>+<id>": where its errors quote that name, they
      // name the container as the user does (paths are left as they are).
      if (err instanceof Error && typeof p.namespace === "string" && typeof p.id === "string") {
        err.message = err.message.replaceAll(
          JSON.stringify(`${p.namespace}+${p.id}`),
          JSON.stringify(p.id),
        );
      }
      throw err;
    } finally {
      // The garbage of a container's set-up or teardown goes once the shim is quiet again, so
      // that what the shim holds while its containers run is what they need.
      if (COLLECT_AFTER.has(method)) collectSoon();
    }
  });
  async function handle(method: string, p: Record<string, unknown>): Promise<unknown> {
    switch (method) {
      case "ping":
        return { pid: Deno.pid, group, containers: service.size, memory: Deno.memoryUsage() };
      case "create":
        return await service.create(p as unknown as CreateParams);
      case "start":
        return await service.start(str(p, "namespace"), str(p, "id"));
      case "kill": {
        const signal = p.signal;
        if (typeof signal !== "number" || !Number.isInteger(signal)) {
          throw new InvalidArgument("Invalid shim request: signal must be a number");
        }
        const execId = optStr(p, "execId");
        return await service.kill(str(p, "namespace"), str(p, "id"), signal, {
          all: p.all === true,
          ...(execId ? { execId } : {}),
        });
      }
      case "pause":
        return await service.pause(str(p, "namespace"), str(p, "id"));
      case "resume":
        return await service.resume(str(p, "namespace"), str(p, "id"));
      case "ps":
        return service.ps(str(p, "namespace"), str(p, "id"));
      case "stats":
        return service.stats(str(p, "namespace"), str(p, "id"));
      case "resize":
        return service.resize(str(p, "namespace"), str(p, "id"), {
          rows: Number(p.rows),
          cols: Number(p.cols),
        }, optStr(p, "execId"));
      case "attach":
        return service.attach(
          str(p, "namespace"),
          str(p, "id"),
          p as { stdin?: string; stdout?: string; stderr?: string },
        );
      case "exec":
        return await service.exec(str(p, "namespace"), str(p, "id"), p as never);
      case "wait":
        return await service.wait(str(p, "namespace"), str(p, "id"), optStr(p, "execId"));
      case "delete":
        return await service.delete(str(p, "namespace"), str(p, "id"), { force: p.force === true });
      case "list":
        return service.list();
      case "state":
        return service.state(str(p, "namespace"), str(p, "id"));
      default:
        throw new InvalidArgument(`Unknown shim method ${JSON.stringify(method)}`);
    }
  }
  Deno.writeTextFileSync(join(dir, "shim.pid"), String(Deno.pid));
  console.error(`tug shim ${group}: serving on ${socket} (pid ${Deno.pid})`);

  const exit = () => {
    server?.close();
    service.close();
    try {
      Deno.removeSync(socket);
      Deno.removeSync(join(dir, "shim.pid"));
    } catch {
      // gone
    }
    // Holding nothing: the group's directory goes too (one was left for every group ever used,
    // and the daemon scans them all at start). Only empty directories and the shim's log.
    try {
      Deno.removeSync(join(dir, "shim.log"));
    } catch {
      // none
    }
    removeEmptyDirs(dir);
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGTERM", () => {
    if (service.size === 0) exit();
    else {console.error(
        `tug shim ${group}: ignoring SIGTERM while holding ${service.size} container(s)`,
      );}
  });
  // Leave when idle: nothing held, nobody connected, for idleExit seconds in a row.
  let idleSince = Date.now();
  await new Promise<void>(() => {
    setInterval(() => {
      if (service.size > 0 || (server?.connections ?? 0) > 0) idleSince = Date.now();
      else if (Date.now() - idleSince >= idleExit * 1000) exit();
    }, Math.min(1000, Math.max(100, idleExit * 250)));
  });
  return 0;
}
