/**
 * The daemon's context: what every service function and route module is
 * given. It holds the configuration, the log, the event bus, the metrics,
 * the image service (opened on first use, so an idle daemon never loads
 * it), typed slots where plugins leave their services for each other
 * ({@link ServiceKey}), hooks that plugins fill for the daemon's own
 * endpoints, a shutdown signal, and the garbage-collection scheduler.
 *
 * @example
 * ```ts
 * // A plugin makes its service available…
 * export const CONTAINERS = new ServiceKey<ContainerService>("containers");
 * ctx.provide(CONTAINERS, service);
 * // …and a route module finds it.
 * const containers = ctx.use(CONTAINERS);
 * ```
 *
 * @module
 */

import type { ShimInfo } from "../client/types.ts";
import { FailedPrecondition } from "../errors.ts";
import type { GcResult, ImageService } from "../images/mod.ts";
import { OCI_VERSION, VERSION } from "../version.ts";
import type { Config } from "./config.ts";
import { EventBus } from "./events.ts";
import { exists } from "../util/fs.ts";
import { collectSoon } from "../util/gc.ts";
import { join } from "../util/path.ts";
import { createLogger, type Logger } from "./log.ts";
import { type DaemonMetrics, daemonMetrics } from "./metrics.ts";

export type { GcResult, ImageService, ShimInfo };

/**
 * A file in the root that says the image store may hold garbage no
 * collection has seen: made when the image service opens, removed when the
 * daemon closes cleanly with no collection pending. A daemon that finds it
 * at start (its predecessor was killed, or stopped before a scheduled
 * collection ran) collects in the background.
 */
export const GC_PENDING_FILE = "gc-pending";

/** A typed name for a service one plugin provides and others use. */
export class ServiceKey<T> {
  /** The service's name, for errors. */
  readonly name: string;
  declare readonly _type: T;

  constructor(name: string) {
    this.name = name;
  }
}

/** Functions plugins set so the daemon's endpoints can report on them. */
export interface DaemonHooks {
  /** The running shims, for `GET /v1/info` (set by the containers service). */
  shims?: () => ShimInfo[] | Promise<ShimInfo[]>;
}

/** Options for {@link DaemonContext}. */
export interface DaemonContextOptions {
  config: Config;
  /** Default: a logger on stderr at the configured level. */
  log?: Logger;
  /** Opens the image service (default: `ImageService.open` with the configured root, snapshotter and registry). */
  openImages?: (ctx: DaemonContext) => Promise<ImageService>;
  /** Default: a fresh set of daemon metrics. */
  metrics?: DaemonMetrics;
}

/** The daemon's context (see the module documentation). */
export class DaemonContext {
  readonly config: Config;
  readonly log: Logger;
  readonly events: EventBus = new EventBus();
  readonly metrics: DaemonMetrics;
  readonly startedAt: Date = new Date();
  readonly hooks: DaemonHooks = {};
  readonly #shutdown = new AbortController();
  readonly #services = new Map<ServiceKey<unknown>, unknown>();
  readonly #closers: Array<() => void | Promise<void>> = [];
  readonly #openImages: (ctx: DaemonContext) => Promise<ImageService>;
  #images: Promise<ImageService> | undefined;
  #gcTimer: ReturnType<typeof setTimeout> | undefined;
  #gcRunning: Promise<unknown> = Promise.resolve();
  #gcCancelled = false;
  #gcFailed = false;
  #closed = false;

  constructor(options: DaemonContextOptions) {
    this.config = options.config;
    this.log = options.log ?? createLogger(options.config.debug.level);
    this.metrics = options.metrics ?? daemonMetrics({ version: VERSION, ociVersion: OCI_VERSION });
    this.#openImages = options.openImages ?? openConfiguredImages;
    this.metrics.registry.gauge("tug_event_subscribers", "Open event subscriptions.")
      .collectWith(() => this.events.subscribers);
    this.metrics.registry.addProvider({
      collect: () => [{
        name: "tug_events_published_total",
        help: "Events published on the event bus.",
        type: "counter",
        samples: [{ value: this.events.published }],
      }],
    });
  }

  /** Aborted when the daemon begins to shut down: long-lived streams end, plugins stop their loops. */
  get signal(): AbortSignal {
    return this.#shutdown.signal;
  }

  /** The image service, opened on first use (its metadata database holds containers too). */
  images(): Promise<ImageService> {
    if (this.#closed) {
      return Promise.reject(
        new FailedPrecondition("Open image service: the daemon is shutting down"),
      );
    }
    if (!this.#images) {
      const opening = this.#openImages(this).then((images) => {
        this.#markGcPending();
        this.#removeStaleLeases(images);
        return images;
      });
      this.#images = opening;
      opening.then(
        () => this.log.debug("image service open", { root: this.config.root }),
        (err) => {
          this.log.error("open image service failed", { error: String(err) });
          if (this.#images === opening) this.#images = undefined; // try again on the next request
        },
      );
    }
    return this.#images;
  }

  /**
   * The daemon runs every pull, import and unpack in its own process, so the
   * image service's leases found when it opens were left by an earlier run
   * that was killed: they go (what they held goes at the next collection).
   */
  #removeStaleLeases(images: ImageService): void {
    const removed = images.removeStaleLeases();
    for (const lease of removed) {
      this.log.info("removed a lease left by an earlier run", {
        namespace: lease.namespace,
        lease: lease.id,
        purpose: lease.purpose,
      });
    }
    if (removed.length > 0) this.scheduleGc();
  }

  get #gcPendingPath(): string {
    return join(this.config.root, GC_PENDING_FILE);
  }

  #markGcPending(): void {
    try {
      if (!exists(this.#gcPendingPath)) Deno.writeTextFileSync(this.#gcPendingPath, "");
    } catch (err) {
      this.log.warn("cannot mark a collection pending", { error: String(err) });
    }
  }

  /**
   * At start: schedules a collection when the last daemon on this root may
   * have left garbage ({@link GC_PENDING_FILE}). It runs in the background,
   * `images.gc_delay` later, and opens the image service (which removes
   * that daemon's leases first).
   */
  collectLeftovers(): void {
    if (exists(this.#gcPendingPath)) {
      this.log.debug("collecting what the last daemon may have left");
      this.scheduleGc();
    }
  }

  /** True once the image service was asked for. */
  get imagesOpened(): boolean {
    return this.#images !== undefined;
  }

  /** Publishes an event on the bus (the same as `ctx.events.publish`). */
  publish(namespace: string, topic: string, payload: Record<string, unknown> = {}): void {
    this.events.publish(namespace, topic, payload);
  }

  /** Makes `value` the service named by `key`. */
  provide<T>(key: ServiceKey<T>, value: T): void {
    this.#services.set(key, value);
  }

  /** The service named by `key`; throws FailedPrecondition when no plugin provided it. */
  use<T>(key: ServiceKey<T>): T {
    if (!this.#services.has(key)) {
      throw new FailedPrecondition(
        `Use ${key.name} service: it is not running (its plugin did not start)`,
      );
    }
    return this.#services.get(key) as T;
  }

  /** The service named by `key`, or undefined. */
  find<T>(key: ServiceKey<T>): T | undefined {
    return this.#services.get(key) as T | undefined;
  }

  /** Runs `fn` when the daemon closes, after the API stopped; the last registered runs first. */
  onClose(fn: () => void | Promise<void>): void {
    this.#closers.push(fn);
  }

  /**
   * Asks for a garbage collection `images.gc_delay` from now (requests in
   * between share it). Call after removing images, containers or snapshots.
   */
  scheduleGc(): void {
    if (this.#closed || this.#gcTimer !== undefined) return;
    const timer = setTimeout(() => {
      this.#gcTimer = undefined;
      this.runGc().catch((err) =>
        this.log.error("garbage collection failed", { error: String(err) })
      ).finally(() => collectSoon());
    }, this.config.images.gcDelay);
    Deno.unrefTimer(timer);
    this.#gcTimer = timer;
  }

  /** Collects garbage now (one collection at a time), with metrics. */
  runGc(): Promise<GcResult> {
    const run = this.#gcRunning.catch(() => {}).then(async () => {
      const images = await this.images();
      const start = performance.now();
      try {
        const result = await images.gc();
        this.recordGc(result, (performance.now() - start) / 1000);
        this.#gcFailed = false;
        return result;
      } catch (err) {
        this.#gcFailed = true;
        throw err;
      }
    });
    this.#gcRunning = run;
    return run;
  }

  /** Counts a collection that ran (prune and remove --sync run theirs through the image service). */
  recordGc(result: GcResult, seconds: number): void {
    this.metrics.gcRuns.inc();
    this.metrics.gcDuration.observe({}, seconds);
    const removed = {
      blobs: result.blobs.length,
      snapshots: result.backendSnapshots.length,
      content_records: result.content.length,
      snapshot_records: result.snapshots.length,
      ingests: result.ingests.length,
      leases: result.leases.length,
    };
    for (const [kind, n] of Object.entries(removed)) {
      if (n > 0) this.metrics.gcRemoved.inc({ kind }, n);
    }
    this.log.debug("garbage collected", removed);
  }

  /**
   * Begins the shutdown: aborts {@link DaemonContext.signal}, ends event
   * subscriptions, cancels a pending GC (the next daemon runs it).
   */
  shutdown(): void {
    if (this.#gcTimer !== undefined) {
      clearTimeout(this.#gcTimer);
      this.#gcCancelled = true;
    }
    this.#gcTimer = undefined;
    this.#shutdown.abort(new FailedPrecondition("The daemon is shutting down"));
    this.events.close();
  }

  /** Shuts down, runs the close hooks (last first), then closes the image service. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.shutdown();
    this.#closed = true;
    for (const fn of this.#closers.reverse()) {
      try {
        await fn();
      } catch (err) {
        this.log.error("close hook failed", { error: String(err) });
      }
    }
    await this.#gcRunning.catch(() => {});
    if (this.#images) {
      const images = await this.#images.catch(() => undefined);
      await images?.close();
      if (images && !this.#gcCancelled && !this.#gcFailed) {
        await Deno.remove(this.#gcPendingPath).catch(() => {});
      }
    }
  }
}

/** Opens the image service the configuration describes. */
async function openConfiguredImages(ctx: DaemonContext): Promise<ImageService> {
  const { ImageService } = await import("../images/mod.ts");
  const c = ctx.config;
  const overlay = (await Deno.readTextFile("/proc/filesystems")).includes("\toverlay\n");
  let snapshotter: string = c.images.snapshotter;
  if (snapshotter === "overlayfs" && !overlay) {
    ctx.log.warn(
      "the kernel has no overlay filesystem: images unpack into the native snapshotter",
      {
        key: "images.snapshotter",
      },
    );
    snapshotter = "native";
  }
  return await ImageService.open(c.root, {
    registry: {
      hostsDir: c.registry.configPath,
      userAgent: `tug/${VERSION}`,
      warn: (message) => ctx.log.warn(message),
    },
    snapshotters: overlay ? ["overlayfs", "native"] : ["native"],
    defaultSnapshotter: snapshotter,
    ...(c.images.maxLayerSize > 0 ? { maxLayerSize: c.images.maxLayerSize } : {}),
  });
}
