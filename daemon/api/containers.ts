/**
 * Routes for containers and their tasks. Stdio travels through FIFOs the
 * client makes and names (as containerd's `ctr` does): the daemon and the
 * CLI are on the same machine, and the shim then moves bytes between the
 * container and the client without the daemon in the way.
 *
 * | route | body | answer |
 * |---|---|---|
 * | `GET /v1/containers` | | `ContainerInfo[]` |
 * | `POST /v1/containers` | `CreateContainerRequest` | `ContainerInfo` (201) |
 * | `GET /v1/containers/{id}` | | `ContainerInfo` (spec included) |
 * | `DELETE /v1/containers/{id}?force=true` | | 204 (`force`: its task is killed and removed first) |
 * | `GET /v1/containers/{id}/logs?follow&tail=N&since=T` | | NDJSON `LogEntry` lines |
 * | `GET /v1/tasks` | | `TaskInfo[]` |
 * | `POST /v1/tasks/{id}/start` | `StdioRequest` | `TaskInfo` (201) |
 * | `POST /v1/tasks/{id}/kill` | `KillRequest` | 204 |
 * | `POST /v1/tasks/{id}/wait` | `{ execId?, remove? }` (remove: delete the container after the exit) | `ExitStatus` |
 * | `POST /v1/tasks/{id}/exec` | `ExecRequest` | `{ pid }` (201) |
 * | `GET /v1/tasks/{id}/ps` | | `number[]` |
 * | `POST /v1/tasks/{id}/pause`, `…/resume` | | 204 |
 * | `GET /v1/tasks/{id}/metrics` | | `CgroupStats` |
 * | `POST /v1/tasks/{id}/resize` | `{ rows, cols, execId? }` | 204 |
 * | `POST /v1/tasks/{id}/attach` | `StdioRequest` | 204 |
 * | `DELETE /v1/tasks/{id}?force=true` | | `ExitStatus` or 204 |
 *
 * @module
 */

import type { CreateContainerRequest, ExecRequest, StdioRequest } from "../../client/types.ts";
import { InvalidArgument, NotFound, Unavailable } from "../../errors.ts";
import type { LinuxSeccomp } from "../../runtime/spec.ts";
import { MAX_FILES as MAX_LOG_FILES } from "../../shim/logs.ts";
import type { DaemonContext } from "../context.ts";
import { parseRestart } from "../containers/service.ts";
import type { MountOption } from "../containers/spec.ts";
import { containers } from "../containers/plugin.ts";
import { type ApiApp, type ApiContext, boolQuery, Fields, readJson } from "./_http.ts";

const ID = /^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$/;

/** Throws InvalidArgument unless `id` is a valid container or exec id. */
export function validateId(id: string, what = "container id"): string {
  if (id.length === 0 || id.length > 76 || !ID.test(id)) {
    throw new InvalidArgument(
      `Invalid ${what} ${
        JSON.stringify(id)
      }: use letters, digits and single . _ - between them, at most 76 characters`,
    );
  }
  return id;
}

function optNumber(f: Fields, name: string): number | undefined {
  const v = f.raw(name);
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) {
    throw new InvalidArgument(`Invalid request body: field ${name} must be a positive number`);
  }
  return v;
}

function mounts(f: Fields): MountOption[] | undefined {
  const v = f.raw("mounts");
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) {
    throw new InvalidArgument("Invalid request body: field mounts must be an array");
  }
  return v.map((m, i) => {
    const g = Fields.of(m, `request body field mounts[${i}]`);
    const type = g.string("type");
    const source = g.optString("source") ?? "";
    const destination = g.string("destination");
    const options = g.optStrings("options") ?? [];
    g.end();
    if (!destination.startsWith("/")) {
      throw new InvalidArgument(`Invalid mount ${i}: destination must be an absolute path`);
    }
    return { type, source, destination, options };
  });
}

function seccomp(f: Fields): LinuxSeccomp | "unconfined" | undefined {
  const v = f.raw("seccompProfile");
  if (v === undefined || v === null) return undefined;
  if (v === "unconfined") return v;
  if (
    typeof v !== "object" || Array.isArray(v) ||
    typeof (v as LinuxSeccomp).defaultAction !== "string"
  ) {
    throw new InvalidArgument(
      'Invalid request body: field seccompProfile must be "unconfined" or an OCI seccomp object with a defaultAction',
    );
  }
  return v as LinuxSeccomp;
}

/** The smallest memory limit a container may have: below it, its init was OOM-killed while it set up. */
const MIN_MEMORY_LIMIT = 6 * 1024 * 1024;

/**
 * Refuses a NUL byte in any string of a request: the kernel's strings end
 * there, so `A=x\0y` became `A=x` and a cwd `/tmp/\0x` became `/tmp/`.
 */
export function refuseNul(value: unknown, path: string): void {
  if (typeof value === "string") {
    if (value.includes("\0")) {
      throw new InvalidArgument(`Invalid ${path}: it contains a NUL byte`);
    }
  } else if (Array.isArray(value)) {
    value.forEach((v, i) => refuseNul(v, `${path}[${i}]`));
  } else if (value && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) {
      refuseNul(k, `${path} key`);
      refuseNul(v, `${path}.${k}`);
    }
  }
}

/** Parses a create request (exported for tests). */
export function parseCreate(body: unknown): CreateContainerRequest {
  refuseNul(body, "request body");
  const f = Fields.of(body);
  const req: CreateContainerRequest = { id: validateId(f.string("id")), image: f.string("image") };
  const set = <K extends keyof CreateContainerRequest>(
    k: K,
    v: CreateContainerRequest[K] | undefined,
  ) => {
    if (v !== undefined) req[k] = v;
  };
  set("args", f.optStrings("args"));
  set("env", f.optStrings("env"));
  set("cwd", f.optString("cwd"));
  set("user", f.optString("user"));
  set("hostname", f.optString("hostname"));
  set("mounts", mounts(f));
  set("netHost", f.optBool("netHost"));
  set("memoryLimit", f.optInt("memoryLimit", MIN_MEMORY_LIMIT)); // Docker's minimum too
  set("cpus", optNumber(f, "cpus"));
  set("pidsLimit", f.optInt("pidsLimit", 1));
  set("readOnly", f.optBool("readOnly"));
  set("privileged", f.optBool("privileged"));
  set("capAdd", f.optStrings("capAdd"));
  set("capDrop", f.optStrings("capDrop"));
  set("seccompProfile", seccomp(f));
  set("terminal", f.optBool("terminal"));
  set("consoleSize", consoleSize(f));
  set("labels", f.optStringMap("labels"));
  const restart = f.raw("restart");
  if (restart !== undefined && restart !== null) {
    if (typeof restart === "string") req.restart = parseRestart(restart);
    else {
      const r = Fields.of(restart, "request body field restart");
      const name = r.string("name");
      const max = r.optInt("maxRetries", 0);
      r.end();
      req.restart = parseRestart(max === undefined ? name : `${name}:${max}`);
    }
  }
  set("logMaxSize", f.optInt("logMaxSize", 0));
  set("logMaxFile", f.optInt("logMaxFile", 1, MAX_LOG_FILES));
  set("snapshotter", f.optString("snapshotter"));
  f.end();
  return req;
}

function consoleSize(f: Fields): { height: number; width: number } | undefined {
  const g = f.optObject("consoleSize");
  if (!g) return undefined;
  const height = g.optInt("height", 0, 65535);
  const width = g.optInt("width", 0, 65535);
  g.end();
  if (height === undefined || width === undefined) {
    throw new InvalidArgument("Invalid request body: consoleSize needs height and width");
  }
  return { height, width };
}

function absolute(path: string | undefined, name: string): string | undefined {
  if (path !== undefined && !path.startsWith("/")) {
    throw new InvalidArgument(`Invalid request body: field ${name} must be an absolute path`);
  }
  return path;
}

function stdio(f: Fields): StdioRequest {
  const out: StdioRequest = {};
  for (const k of ["stdin", "stdout", "stderr"] as const) {
    const v = absolute(f.optString(k), k);
    if (v) out[k] = v;
  }
  return out;
}

async function optionalJson(c: ApiContext, limit: number): Promise<Fields> {
  const length = c.req.header("content-length");
  if (length === "0" || (!c.req.raw.body && length === undefined)) return Fields.of({});
  return Fields.of(await readJson(c, limit));
}

/** Adds the container and task routes. */
export function routes(app: ApiApp, ctx: DaemonContext): void {
  const limit = ctx.config.api.maxBodySize;
  const svc = () => containers(ctx);
  const id = (c: ApiContext) => validateId(c.req.param("id")!);

  app.get("/v1/containers", async (c) => c.json((await svc()).list(c.get("namespace"))));

  app.post("/v1/containers", async (c) => {
    const req = parseCreate(await readJson(c, limit));
    return c.json(await (await svc()).create(c.get("namespace"), req), 201);
  });

  app.get("/v1/containers/:id", async (c) => c.json((await svc()).info(c.get("namespace"), id(c))));

  app.delete("/v1/containers/:id", async (c) => {
    await (await svc()).delete(c.get("namespace"), id(c), { force: boolQuery(c, "force") });
    ctx.scheduleGc();
    return c.body(null, 204);
  });

  app.get("/v1/containers/:id/logs", async (c) => {
    const tail = c.req.query("tail");
    const since = c.req.query("since");
    const follow = boolQuery(c, "follow");
    let tailN: number | undefined;
    if (tail !== undefined && tail !== "all") {
      tailN = Number(tail);
      if (!Number.isInteger(tailN) || tailN < 0) {
        throw new InvalidArgument(
          `Invalid query parameter tail: ${JSON.stringify(tail)} is not a whole number`,
        );
      }
    }
    let sinceDate: Date | undefined;
    if (since !== undefined) {
      sinceDate = new Date(since);
      if (Number.isNaN(sinceDate.getTime())) {
        throw new InvalidArgument(
          `Invalid query parameter since: ${JSON.stringify(since)} is not a time`,
        );
      }
    }
    const abort = new AbortController();
    const entries = (await svc()).logs(c.get("namespace"), id(c), {
      follow,
      signal: AbortSignal.any([abort.signal, ctx.signal]),
      ...(tailN !== undefined ? { tail: tailN } : {}),
      ...(sinceDate ? { since: sinceDate } : {}),
    });
    const encoder = new TextEncoder();
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        try {
          const next = await entries.next();
          if (next.done) controller.close();
          else controller.enqueue(encoder.encode(JSON.stringify(next.value) + "\n"));
        } catch (err) {
          if (abort.signal.aborted || ctx.signal.aborted) controller.close();
          else controller.error(err);
        }
      },
      cancel() {
        abort.abort();
        void entries.return(undefined);
      },
    });
    return new Response(body, { headers: { "content-type": "application/x-ndjson" } });
  });

  app.get("/v1/tasks", async (c) => c.json((await svc()).tasks(c.get("namespace"))));

  app.post("/v1/tasks/:id/start", async (c) => {
    const f = await optionalJson(c, limit);
    const io = stdio(f);
    f.end();
    return c.json(await (await svc()).start(c.get("namespace"), id(c), io), 201);
  });

  app.post("/v1/tasks/:id/kill", async (c) => {
    const f = await optionalJson(c, limit);
    const raw = f.raw("signal");
    if (raw !== undefined && raw !== null && typeof raw !== "string" && typeof raw !== "number") {
      throw new InvalidArgument("Invalid request body: field signal must be a name or a number");
    }
    const all = f.optBool("all");
    const execId = f.optString("execId");
    f.end();
    await (await svc()).kill(
      c.get("namespace"),
      id(c),
      (raw as string | number | undefined) ?? "TERM",
      {
        ...(all ? { all } : {}),
        ...(execId ? { execId } : {}),
      },
    );
    return c.body(null, 204);
  });

  app.post("/v1/tasks/:id/wait", async (c) => {
    const f = await optionalJson(c, limit);
    const execId = f.optString("execId");
    const remove = f.optBool("remove") === true;
    f.end();
    if (remove && execId) {
      throw new InvalidArgument("Invalid wait request: remove applies to the task, not to an exec");
    }
    const service = await svc();
    // run --rm: the container goes once its task has exited, even if the caller has gone, or the
    // daemon restarted meanwhile (the service marks it and removes it at the exit).
    if (remove) await service.removeOnExit(c.get("namespace"), id(c));
    const exit = await untilShutdown(service.wait(c.get("namespace"), id(c), execId), ctx.signal);
    if (remove) {
      await service.delete(c.get("namespace"), id(c)).catch((err) => {
        if (!(err instanceof NotFound)) throw err; // removed at the exit already
      });
    }
    return c.json(exit);
  });

  app.post("/v1/tasks/:id/exec", async (c) => {
    const body = await readJson(c, limit);
    refuseNul(body, "request body");
    const f = Fields.of(body);
    const req: ExecRequest = {
      execId: validateId(f.string("execId"), "exec id"),
      args: f.optStrings("args") ?? [],
      ...stdio(f),
    };
    const terminal = f.optBool("terminal");
    const cwd = absolute(f.optString("cwd"), "cwd");
    const user = f.optString("user");
    const env = f.optStrings("env");
    const size = consoleSize(f);
    f.end();
    if (req.args.length === 0) {
      throw new InvalidArgument("Invalid request body: field args needs a command");
    }
    if (terminal) req.terminal = true;
    if (cwd) req.cwd = cwd;
    if (user) req.user = user;
    if (env) req.env = env;
    if (size) req.consoleSize = size;
    return c.json(await (await svc()).exec(c.get("namespace"), id(c), req), 201);
  });

  app.get(
    "/v1/tasks/:id/ps",
    async (c) => c.json(await (await svc()).ps(c.get("namespace"), id(c))),
  );

  app.post("/v1/tasks/:id/pause", async (c) => {
    await (await svc()).pause(c.get("namespace"), id(c));
    return c.body(null, 204);
  });

  app.post("/v1/tasks/:id/resume", async (c) => {
    await (await svc()).resume(c.get("namespace"), id(c));
    return c.body(null, 204);
  });

  app.get(
    "/v1/tasks/:id/metrics",
    async (c) => c.json(await (await svc()).metrics(c.get("namespace"), id(c))),
  );

  app.post("/v1/tasks/:id/resize", async (c) => {
    const f = Fields.of(await readJson(c, limit));
    const rows = f.optInt("rows", 1, 65535);
    const cols = f.optInt("cols", 1, 65535);
    const execId = f.optString("execId");
    f.end();
    if (rows === undefined || cols === undefined) {
      throw new InvalidArgument("Invalid request body: fields rows and cols are required");
    }
    await (await svc()).resize(c.get("namespace"), id(c), { rows, cols }, execId);
    return c.body(null, 204);
  });

  app.post("/v1/tasks/:id/attach", async (c) => {
    const f = Fields.of(await readJson(c, limit));
    const io = stdio(f);
    f.end();
    await (await svc()).attach(c.get("namespace"), id(c), io);
    return c.body(null, 204);
  });

  app.delete("/v1/tasks/:id", async (c) => {
    const exit = await (await svc()).deleteTask(c.get("namespace"), id(c), {
      force: boolQuery(c, "force"),
    });
    return exit ? c.json(exit) : c.body(null, 204);
  });
}

/**
 * `work`, or an Unavailable error once the daemon begins to shut down: a
 * wait for a task that runs on must not hold the daemon's exit (systemd's
 * stop would time out).
 */
function untilShutdown<T>(work: Promise<T>, shutdown: AbortSignal): Promise<T> {
  if (shutdown.aborted) work = Promise.reject(shuttingDown());
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(shuttingDown());
    shutdown.addEventListener("abort", onAbort, { once: true });
    work.then(resolve, reject).finally(() => shutdown.removeEventListener("abort", onAbort));
  });
}

function shuttingDown(): Unavailable {
  return new Unavailable("The daemon is shutting down; the task keeps running");
}
