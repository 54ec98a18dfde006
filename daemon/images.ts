/**
 * The daemon's image functions: the image service's operations with what
 * the daemon adds around them (events, metrics, per-request registry
 * settings, scheduled garbage collection) and their results in the API's
 * wire types. Usable without HTTP; the routes in `api/images.ts` only
 * forward to them.
 *
 * Nothing here imports the image service's modules statically: they load
 * on the first request that needs them, so an idle daemon stays small.
 *
 * @module
 */

import {
  type DiskUsageInfo,
  type GcResultInfo,
  type ImageInfo,
  type ImageUsageInfo,
  type ImportResultInfo,
  type PruneResultInfo,
  type PullProgressInfo,
  type PullRequest,
  type PullResultInfo,
  type PushRequest,
  type PushResultInfo,
  type RegistryCredentials,
  type TagRequest,
  TOPICS,
  type TransferProgressInfo,
} from "../client/types.ts";
import { NotFound, Unavailable } from "../errors.ts";
import type {
  Descriptor,
  DiskUsage,
  GcResult,
  Image,
  ImageService,
  ImageUsage,
} from "../images/mod.ts";
import type { DaemonContext } from "./context.ts";
import { formatLogLine } from "./log.ts";
import { passThrough } from "../util/streams.ts";

/** The namespace an operation works in. */
export interface InNamespace {
  namespace: string;
}

/** Options for {@link pullImage}. */
export interface PullImageOptions extends InNamespace {
  onProgress?: (progress: PullProgressInfo) => void;
  signal?: AbortSignal;
}

/** Options for {@link pushImage}. */
export interface PushImageOptions extends InNamespace {
  onProgress?: (progress: TransferProgressInfo) => void;
  signal?: AbortSignal;
}

/** Options for {@link removeImage}. */
export interface RemoveImageOptions extends InNamespace {
  /** Collect garbage before returning (default: soon after). */
  sync?: boolean;
}

/** Options for {@link importImages}. */
export interface ImportImagesOptions extends InNamespace {
  /** The name for the image (an archive of one image only). */
  name?: string;
  /** Unpack for this machine's platform (default true). */
  unpack?: boolean;
}

/** Options for {@link exportImages}. */
export interface ExportImagesOptions extends InNamespace {
  /** Only this platform of multi-platform images (`os/arch[/variant]`). */
  platform?: string;
  /** Every platform the store has (the default). */
  allPlatforms?: boolean;
}

const EMPTY_USAGE: ImageUsageInfo = { content: 0, snapshots: 0, size: 0, shared: 0, unique: 0 };

function usageInfo(u: ImageUsage | undefined): ImageUsageInfo {
  if (!u) return { ...EMPTY_USAGE };
  return {
    content: u.content,
    snapshots: u.snapshots,
    size: u.size,
    shared: u.shared,
    unique: u.unique,
  };
}

/** The platforms an image has content for, as `os/arch[/variant]`. */
async function platformsOf(
  images: ImageService,
  namespace: string,
  image: Image,
): Promise<string[]> {
  const { formatPlatform, isIndexType } = await registryHelpers();
  const content = images.db.contentStore(namespace, images.content);
  const json = async <T>(d: Descriptor): Promise<T | undefined> => {
    try {
      return JSON.parse(new TextDecoder().decode(await content.readBytes(d.digest))) as T;
    } catch {
      return undefined;
    }
  };
  const ofManifest = async (d: Descriptor): Promise<string | undefined> => {
    const manifest = await json<{ config?: Descriptor }>(d);
    if (!manifest?.config) return undefined;
    const config = await json<{ os?: string; architecture?: string; variant?: string }>(
      manifest.config,
    );
    if (!config?.os || !config.architecture) return undefined;
    return formatPlatform({
      os: config.os,
      architecture: config.architecture,
      ...(config.variant ? { variant: config.variant } : {}),
    });
  };
  if (!isIndexType(image.target.mediaType)) {
    const p = await ofManifest(image.target);
    return p ? [p] : [];
  }
  const index = await json<{ manifests?: Descriptor[] }>(image.target);
  const out: string[] = [];
  for (const m of index?.manifests ?? []) {
    if (!m.platform) continue;
    try {
      await content.info(m.digest);
    } catch {
      continue; // not in the store: pulled for another platform only
    }
    const p = formatPlatform(m.platform);
    if (!out.includes(p)) out.push(p);
  }
  return out;
}

async function registryHelpers() {
  const [{ formatPlatform, parsePlatform, platformMatcher }, { isIndexType, RegistryClient }] =
    await Promise.all([
      import("../images/registry/platforms.ts"),
      import("../images/registry/client.ts"),
    ]);
  return { formatPlatform, parsePlatform, platformMatcher, isIndexType, RegistryClient };
}

async function imageInfo(
  images: ImageService,
  namespace: string,
  image: Image,
  usage: DiskUsage,
): Promise<ImageInfo> {
  return {
    name: image.name,
    target: image.target,
    labels: image.labels,
    createdAt: image.createdAt.toISOString(),
    updatedAt: image.updatedAt.toISOString(),
    platforms: await platformsOf(images, namespace, image),
    usage: usageInfo(usage.images.find((u) => u.name === image.name)),
  };
}

async function infos(images: ImageService, namespace: string, list: Image[]): Promise<ImageInfo[]> {
  if (list.length === 0) return [];
  const usage = await images.usage({ namespace });
  const out: ImageInfo[] = [];
  for (const image of list) out.push(await imageInfo(images, namespace, image, usage));
  return out;
}

/** The images of a namespace, by name, with their platforms and disk usage. */
export async function listImages(ctx: DaemonContext, options: InNamespace): Promise<ImageInfo[]> {
  const images = await ctx.images();
  return await infos(images, options.namespace, images.list({ namespace: options.namespace }));
}

/** The image `name` (as given or normalized); throws NotFound. */
export async function getImage(
  ctx: DaemonContext,
  name: string,
  options: InNamespace,
): Promise<ImageInfo> {
  const images = await ctx.images();
  return (await infos(images, options.namespace, [images.get(name, options)]))[0]!;
}

function existing(images: ImageService, namespace: string, name: string): Image | undefined {
  try {
    return images.get(name, { namespace });
  } catch (err) {
    if (err instanceof NotFound) return undefined;
    throw err;
  }
}

/** True when a name that named `before` now names another target: the old one may be garbage. */
function retargeted(before: Image | undefined, after: Image): boolean {
  return before !== undefined && before.target.digest !== after.target.digest;
}

/**
 * An image service for one request: the daemon's, or (for plain HTTP, no
 * TLS verification or credentials) a view over the same stores with its own
 * registry client, closed by the returned function.
 */
async function withRegistry(
  ctx: DaemonContext,
  options: { plainHttp?: boolean; skipVerify?: boolean; credentials?: RegistryCredentials },
): Promise<{ service: ImageService; done: () => void }> {
  const base = await ctx.images();
  if (!options.plainHttp && !options.skipVerify && !options.credentials) {
    return { service: base, done: () => {} };
  }
  const [{ ImageService }, { RegistryClient }] = await Promise.all([
    import("../images/mod.ts"),
    import("../images/registry/client.ts"),
  ]);
  const credentials = options.credentials;
  const registry = new RegistryClient({
    hostsDir: ctx.config.registry.configPath,
    warn: (message) => ctx.log.warn(message),
    ...(options.plainHttp ? { plainHttp: true } : {}),
    ...(options.skipVerify ? { skipVerify: true } : {}),
    ...(credentials ? { credentials: () => credentials } : {}),
  });
  const service = new ImageService({
    db: base.db,
    content: base.content,
    snapshotters: base.snapshotters.map((n) => base.snapshotter(n)),
    defaultSnapshotter: base.defaultSnapshotter,
    registry,
    ...(ctx.config.images.maxLayerSize > 0 ? { maxLayerSize: ctx.config.images.maxLayerSize } : {}),
  });
  return { service, done: () => registry.close() };
}

/** `signal` (the client's) and the daemon's shutdown signal, as one. */
function withShutdown(ctx: DaemonContext, signal: AbortSignal | undefined): AbortSignal {
  return signal ? AbortSignal.any([signal, ctx.signal]) : ctx.signal;
}

/** `err`, or Unavailable naming `what` when the daemon's shutdown ended it. */
function shutdownError(ctx: DaemonContext, what: string, err: unknown): unknown {
  if (!ctx.signal.aborted) return err;
  return new Unavailable(`${what}: the daemon is shutting down`, { cause: err });
}

/**
 * Pulls and (by default) unpacks an image, reporting progress; publishes
 * `/images/create` or `/images/update`. The daemon's shutdown cancels it
 * (Unavailable), as the client's going away does.
 */
export async function pullImage(
  ctx: DaemonContext,
  request: PullRequest,
  options: PullImageOptions,
): Promise<PullResultInfo> {
  const { namespace } = options;
  const { parsePlatform, formatPlatform } = await registryHelpers();
  const platform = request.allPlatforms
    ? "all" as const
    : request.platform
    ? parsePlatform(request.platform)
    : undefined;
  const { service, done } = await withRegistry(ctx, request);
  const m = ctx.metrics;
  try {
    const before = existing(service, namespace, request.ref);
    const result = await service.pull(request.ref, {
      namespace,
      ...(platform ? { platform } : {}),
      ...(request.unpack === false ? { unpack: false } : {}),
      ...(request.snapshotter ? { snapshotter: request.snapshotter } : {}),
      concurrency: ctx.config.images.pullConcurrency,
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
      signal: withShutdown(ctx, options.signal),
    });
    m.pulls.inc({ result: "success" });
    m.pullBytes.inc({}, result.stats.bytes);
    if (retargeted(before, result.image)) ctx.scheduleGc();
    ctx.publish(namespace, before ? TOPICS.imageUpdate : TOPICS.imageCreate, {
      name: result.image.name,
      target: result.image.target.digest,
    });
    ctx.log.info("pulled image", {
      namespace,
      name: result.image.name,
      digest: result.image.target.digest,
      bytes: result.stats.bytes,
      platform: platform === "all" ? "all" : platform ? formatPlatform(platform) : undefined,
    });
    const usage = await service.usage({ namespace });
    return {
      image: await imageInfo(service, namespace, result.image, usage),
      ...(result.unpacked ? { unpacked: result.unpacked } : {}),
      stats: { ...result.stats },
    };
  } catch (err) {
    m.pulls.inc({ result: "failure" });
    m.pullFailures.inc();
    const error = shutdownError(ctx, `Pull ${request.ref}`, err);
    ctx.log.warn("pull failed", {
      namespace,
      ref: request.ref,
      error: String((error as Error)?.message ?? error),
    });
    throw error;
  } finally {
    done();
  }
}

/** Pushes image `name` to its registry (or `request.remote`); the daemon's shutdown cancels it (Unavailable). */
export async function pushImage(
  ctx: DaemonContext,
  name: string,
  request: PushRequest & PushImageOptions,
): Promise<PushResultInfo> {
  const { service, done } = await withRegistry(ctx, request);
  try {
    const r = await service.push(name, {
      namespace: request.namespace,
      ...(request.remote ? { remote: request.remote } : {}),
      ...(request.onProgress ? { onProgress: request.onProgress } : {}),
      signal: withShutdown(ctx, request.signal),
    });
    ctx.metrics.pushes.inc({ result: "success" });
    ctx.log.info("pushed image", {
      namespace: request.namespace,
      name,
      remote: r.name,
      digest: r.target.digest,
    });
    return {
      name: r.name,
      target: r.target,
      uploaded: r.uploaded,
      existing: r.existing,
      mounted: r.mounted,
      manifests: r.manifests,
    };
  } catch (err) {
    ctx.metrics.pushes.inc({ result: "failure" });
    throw shutdownError(ctx, `Push ${name}`, err);
  } finally {
    done();
    // The push's lease is gone: an image removed meanwhile is collectable now.
    if (!existing(service, request.namespace, name)) ctx.scheduleGc();
  }
}

/** Removes the image record `name`; publishes `/images/delete`; its space is freed by a collection soon after (at once with `sync`). */
export async function removeImage(
  ctx: DaemonContext,
  name: string,
  options: RemoveImageOptions,
): Promise<void> {
  const images = await ctx.images();
  const image = images.get(name, options);
  await images.remove(image.name, { namespace: options.namespace });
  ctx.publish(options.namespace, TOPICS.imageDelete, { name: image.name });
  if (options.sync) await ctx.runGc();
  else ctx.scheduleGc();
}

/** Records another name for an image; publishes `/images/create` (or `/images/update` with `force`). */
export async function tagImage(
  ctx: DaemonContext,
  source: string,
  request: TagRequest & InNamespace,
): Promise<ImageInfo> {
  const images = await ctx.images();
  const before = request.force ? existing(images, request.namespace, request.target) : undefined;
  const image = images.tag(source, request.target, {
    namespace: request.namespace,
    ...(request.force ? { force: true } : {}),
  });
  ctx.publish(request.namespace, before ? TOPICS.imageUpdate : TOPICS.imageCreate, {
    name: image.name,
    target: image.target.digest,
  });
  if (retargeted(before, image)) ctx.scheduleGc();
  return (await infos(images, request.namespace, [image]))[0]!;
}

/**
 * Imports an OCI layout or `docker save` tar; publishes an event per image.
 * Nothing is half-imported. The daemon's shutdown ends an upload in progress.
 */
export async function importImages(
  ctx: DaemonContext,
  input: ReadableStream<Uint8Array>,
  options: ImportImagesOptions,
): Promise<ImportResultInfo> {
  const images = await ctx.images();
  const { namespace } = options;
  const before = new Map(images.list({ namespace }).map((i) => [i.name, i]));
  // An upload that stalls would hold the daemon's shutdown up.
  const upload = passThrough(input, {
    signal: ctx.signal,
    error: (err) => shutdownError(ctx, "Import images", err),
  });
  const result = await images.import(upload, {
    namespace,
    ...(options.name !== undefined ? { name: options.name } : {}),
    ...(options.unpack === false ? { unpack: false } : {}),
  });
  for (const image of result.images) {
    ctx.publish(namespace, before.has(image.name) ? TOPICS.imageUpdate : TOPICS.imageCreate, {
      name: image.name,
      target: image.target.digest,
    });
  }
  if (result.images.some((i) => retargeted(before.get(i.name), i))) ctx.scheduleGc();
  ctx.log.info("imported images", {
    namespace,
    format: result.format,
    images: result.images.length,
  });
  return { format: result.format, images: await infos(images, namespace, result.images) };
}

/**
 * The tar of images `names` (OCI layout with Docker's manifest.json). The
 * image service holds the images' content until the stream ends. A failure
 * once the stream has begun (or the daemon's shutdown, which ends the
 * stream) can only break the connection off; it is logged as one line.
 */
export async function exportImages(
  ctx: DaemonContext,
  names: string[],
  options: ExportImagesOptions,
): Promise<ReadableStream<Uint8Array>> {
  const images = await ctx.images();
  const { parsePlatform, platformMatcher } = await registryHelpers();
  const { namespace } = options;
  const tar = await images.export(names, {
    namespace,
    ...(options.platform && !options.allPlatforms
      ? { platforms: platformMatcher(parsePlatform(options.platform)) }
      : {}),
  });
  const fields = { namespace, images: names.join(" ") };
  return passThrough(tar, {
    signal: ctx.signal,
    // Deno.serve prints a response body's error on stderr (the daemon's log) and breaks the
    // connection off, which the client reports as an archive broken off.
    error: (err) =>
      new LoggedError(
        formatLogLine("error", "export failed", {
          ...fields,
          error: String((err as Error)?.message ?? err),
        }),
        err,
      ),
    end: (how) => {
      if (how === "cancelled") ctx.log.debug("export cancelled by the client", fields);
      // The lease is gone: what was removed meanwhile is collectable now.
      if (names.some((n) => !existing(images, namespace, n))) ctx.scheduleGc();
    },
  });
}

/** An error whose printing (Deno.serve prints a body stream's error) is one log line, no stack. */
class LoggedError extends Error {
  readonly line: string;
  constructor(line: string, cause: unknown) {
    super(line, { cause });
    this.line = line;
  }
  [Symbol.for("Deno.customInspect")](): string {
    return this.line;
  }
}

/** Collects garbage (and with `all`, first removes images no container uses); publishes `/images/delete` per image. */
export async function pruneImages(
  ctx: DaemonContext,
  options: InNamespace & { all?: boolean },
): Promise<PruneResultInfo> {
  const images = await ctx.images();
  const start = performance.now();
  const r = await images.prune({
    namespace: options.namespace,
    ...(options.all ? { all: true } : {}),
  });
  ctx.recordGc(r.gc, (performance.now() - start) / 1000);
  for (const name of r.images) ctx.publish(options.namespace, TOPICS.imageDelete, { name });
  return { images: r.images, gc: gcInfo(r.gc), reclaimed: r.reclaimed };
}

/** What a collection removed, counted. */
export function gcInfo(gc: GcResult): GcResultInfo {
  return {
    blobs: gc.blobs.length,
    snapshots: gc.backendSnapshots.length,
    ingests: gc.ingests.length,
    leases: gc.leases.length,
  };
}

/** Disk usage of a namespace, per image and in total. */
export async function imageUsage(ctx: DaemonContext, options: InNamespace): Promise<DiskUsageInfo> {
  const images = await ctx.images();
  const u = await images.usage({ namespace: options.namespace });
  return {
    images: u.images.map((i) => ({ name: i.name, ...usageInfo(i) })),
    content: u.content,
    snapshots: u.snapshots,
    ingests: u.ingests,
    size: u.size,
    reclaimable: u.reclaimable,
  };
}
