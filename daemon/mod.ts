/**
 * `tug daemon`: serves the HTTP API on a unix socket and, when configured,
 * Prometheus metrics over TCP; starts the plugins; tells systemd when it is
 * ready and when it stops. Containers are never its children: stopping the
 * daemon leaves shims and containers running.
 *
 * Start-up: make the root and state directories; refuse to start when
 * another process answers on the socket, remove a stale socket file
 * otherwise; start the plugins; listen (socket mode 0660, group
 * `api.gid`); send `READY=1`.
 *
 * Shutdown (SIGTERM or SIGINT; {@link DaemonHandle.stop}): send
 * `STOPPING=1`; end event streams; stop accepting and let requests in
 * flight finish; close the plugins and the database; the socket file is
 * removed. A second signal exits at once.
 *
 * @module
 */

import { FailedPrecondition, InvalidArgument } from "../errors.ts";
import { dirname, join } from "../util/path.ts";
import type { Config } from "./config.ts";
import { DaemonContext, type DaemonContextOptions } from "./context.ts";
import type { Logger } from "./log.ts";
import { METRICS_CONTENT_TYPE } from "./metrics.ts";
import { sdNotify } from "./notify.ts";
import { type Plugin, PLUGINS, startPlugins } from "./plugins.ts";
import { createApp, ROUTE_MODULES, type RouteModule } from "./api/mod.ts";
import { collectSoon } from "../util/gc.ts";

export { DaemonContext };

/** Options for {@link startDaemon}. */
export interface DaemonOptions {
  config: Config;
  log?: Logger;
  /** Plugins to start (default: {@link PLUGINS}). */
  plugins?: readonly Plugin[];
  /** Route modules (default: every one). */
  routes?: ReadonlyArray<() => Promise<RouteModule>>;
  /** Opens the image service (tests). */
  openImages?: DaemonContextOptions["openImages"];
  /** The sd_notify socket (default: `$NOTIFY_SOCKET`). */
  notifySocket?: string;
}

/** A running daemon. */
export interface DaemonHandle {
  ctx: DaemonContext;
  /** The API socket. */
  address: string;
  /** `host:port` of the metrics listener, when there is one (the port actually bound). */
  metricsAddress?: string;
  /** Shuts down gracefully (see the module documentation); resolves when everything is closed. */
  stop(): Promise<void>;
}

/** What a path holds, as far as starting a server on it goes. */
export type SocketState = "absent" | "stale" | "alive" | "not-socket";

/** Finds out whether `path` is free, a stale socket file, a socket someone answers on, or something else. */
export async function probeSocket(path: string): Promise<SocketState> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.lstat(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return "absent";
    throw err;
  }
  if (!info.isSocket) return "not-socket";
  try {
    const conn = await Deno.connect({ transport: "unix", path });
    conn.close();
    return "alive";
  } catch (err) {
    if (err instanceof Deno.errors.ConnectionRefused || err instanceof Deno.errors.NotFound) {
      return "stale";
    }
    throw err;
  }
}

/** Splits `host:port` (IPv6 in brackets) for Deno.serve. */
export function splitHostPort(address: string): { hostname: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(address);
  if (!m) {
    throw new InvalidArgument(`Invalid address ${JSON.stringify(address)}: expected host:port`);
  }
  return { hostname: m[1] ?? m[2]!, port: Number(m[3]) };
}

async function prepareSocket(path: string, log: Logger): Promise<void> {
  await Deno.mkdir(dirname(path), { recursive: true, mode: 0o711 });
  const state = await probeSocket(path);
  if (state === "alive") {
    throw new FailedPrecondition(
      `Start daemon: another process answers on ${path}: is a tug daemon running already?`,
    );
  }
  if (state === "not-socket") {
    throw new FailedPrecondition(`Start daemon: ${path} exists and is not a socket`);
  }
  if (state === "stale") {
    log.warn("removing a stale socket file", { address: path });
    await Deno.remove(path);
  }
}

/**
 * Takes `<dir>/daemon.lock` (an exclusive flock, held while the daemon
 * runs): two daemons on one root or state each restarted and removed the
 * other's tasks (a helper's probes; containerd locks its database too).
 */
function lockDir(dir: string, what: string): Deno.FsFile {
  const path = join(dir, "daemon.lock");
  const file = Deno.openSync(path, { read: true, write: true, create: true, mode: 0o600 });
  if (!file.tryLockSync(true)) {
    const pid = new TextDecoder().decode(Deno.readFileSync(path)).trim();
    file.close();
    throw new FailedPrecondition(
      `Start daemon: another tug daemon${pid ? ` (pid ${pid})` : ""} uses the ${what} ${dir}`,
    );
  }
  file.truncateSync(0);
  file.writeSync(new TextEncoder().encode(`${Deno.pid}\n`));
  return file;
}

/** Starts the daemon (see the module documentation) and resolves once it serves. */
export async function startDaemon(options: DaemonOptions): Promise<DaemonHandle> {
  const { config } = options;
  const ctx = new DaemonContext({
    config,
    ...(options.log ? { log: options.log } : {}),
    ...(options.openImages ? { openImages: options.openImages } : {}),
  });
  const log = ctx.log;
  const address = config.api.address;
  await Deno.mkdir(config.root, { recursive: true, mode: 0o700 });
  await Deno.mkdir(config.state, { recursive: true, mode: 0o711 });
  const locks = [lockDir(config.root, "root")];
  try {
    if (config.state !== config.root) locks.push(lockDir(config.state, "state directory"));
  } catch (err) {
    locks.forEach((l) => l.close());
    throw err;
  }
  const unlock = () => locks.splice(0).forEach((l) => l.close());
  try {
    return await serve();
  } catch (err) {
    unlock();
    throw err;
  }

  async function serve(): Promise<DaemonHandle> {
    await prepareSocket(address, log);

    const app = await createApp(ctx, options.routes ?? ROUTE_MODULES);
    await startPlugins(ctx, options.plugins ?? PLUGINS);

    let server: Deno.HttpServer<Deno.UnixAddr>;
    try {
      server = Deno.serve({ path: address, onListen() {} }, app.fetch);
    } catch (err) {
      await ctx.close();
      throw new FailedPrecondition(
        `Start daemon: listen on ${address}: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
    const socketInfo = await Deno.lstat(address);
    await Deno.chmod(address, 0o660);
    if (config.api.gid !== 0) await Deno.chown(address, 0, config.api.gid);

    let metricsServer: Deno.HttpServer<Deno.NetAddr> | undefined;
    let metricsAddress: string | undefined;
    if (config.metrics.address) {
      try {
        const { hostname, port } = splitHostPort(config.metrics.address);
        metricsServer = Deno.serve({ hostname, port, onListen() {} }, async (req) => {
          const url = new URL(req.url);
          if (url.pathname !== "/metrics") {
            return new Response("Not found: try /metrics\n", { status: 404 });
          }
          if (req.method !== "GET" && req.method !== "HEAD") {
            return new Response(null, { status: 405 });
          }
          const text = await ctx.metrics.registry.render((err) =>
            log.warn("metrics provider failed", { error: String(err) })
          );
          return new Response(req.method === "HEAD" ? null : text, {
            headers: { "content-type": METRICS_CONTENT_TYPE },
          });
        });
        const a = metricsServer.addr;
        metricsAddress = a.hostname.includes(":")
          ? `[${a.hostname}]:${a.port}`
          : `${a.hostname}:${a.port}`;
      } catch (err) {
        await server.shutdown();
        await ctx.close();
        throw new FailedPrecondition(
          `Start daemon: listen for metrics on ${config.metrics.address}: ${
            (err as Error).message
          }`,
          { cause: err },
        );
      }
    }

    const notify = (state: string) =>
      sdNotify(state, options.notifySocket !== undefined ? { socket: options.notifySocket } : {})
        .catch((err) => log.warn("sd_notify failed", { state, error: String(err) }));
    await notify("READY=1");
    collectSoon(); // what start-up alone faulted in and allocated
    ctx.collectLeftovers(); // in the background, once serving
    log.info("serving", {
      address,
      metrics: metricsAddress,
      root: config.root,
      state: config.state,
      pid: Deno.pid,
    });

    let stopping: Promise<void> | undefined;
    const stop = () => {
      stopping ??= (async () => {
        log.info("shutting down");
        await notify("STOPPING=1");
        ctx.shutdown();
        await Promise.all([server.shutdown(), metricsServer?.shutdown()]);
        await ctx.close();
        unlock();
        // Deno removes the socket it made; make sure of it, but never remove another daemon's.
        try {
          const now = await Deno.lstat(address);
          if (now.ino === socketInfo.ino && now.dev === socketInfo.dev) await Deno.remove(address);
        } catch {
          // gone already
        }
        log.info("stopped");
      })();
      return stopping;
    };
    return { ctx, address, ...(metricsAddress ? { metricsAddress } : {}), stop };
  }
}

/**
 * Runs the daemon until SIGTERM or SIGINT, then shuts down gracefully and
 * resolves. A second signal exits at once with status 1.
 */
export async function runDaemon(options: DaemonOptions): Promise<void> {
  const handle = await startDaemon(options);
  const signals: Deno.Signal[] = ["SIGTERM", "SIGINT"];
  await new Promise<void>((resolve) => {
    let seen = false;
    const onSignal = () => {
      if (seen) {
        handle.ctx.log.warn("second signal: exiting at once");
        Deno.exit(1);
      }
      seen = true;
      resolve();
    };
    for (const s of signals) Deno.addSignalListener(s, onSignal);
  });
  await handle.stop();
}
