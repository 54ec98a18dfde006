/**
 * The image service: what the daemon calls to pull, push, list, tag, remove,
 * import, export, unpack and measure images, and to prepare a container's
 * root filesystem. It ties the registry client, the content store, the
 * snapshotters and the metadata database together, per namespace:
 *
 * - `pull` resolves the reference, reads the manifest and config, then
 *   fetches the layers in parallel while unpacking them in order into
 *   snapshots named by chain ID (each layer's diff ID checked against the
 *   config), and records the image. A lease holds everything the pull
 *   writes until the image record exists, so garbage collection running
 *   meanwhile keeps it; the lease is removed at the end, and expires by
 *   itself (24 h) if the process dies, leaving the partial download
 *   resumable until then. A process that alone uses the store (the daemon)
 *   removes such leftovers when it opens it: `removeStaleLeases()`.
 * - The layer that the unpacker waits for is unpacked from the download
 *   as it arrives; layers that arrive while the unpacker is busy are
 *   downloaded at full speed into the content store and unpacked from there.
 *
 * @module
 */

import { join } from "../util/path.ts";
import { passThrough } from "../util/streams.ts";
import { FailedPrecondition, InvalidArgument, NotFound } from "../errors.ts";
// The archive code (tar-stream, node:zlib) is imported by import() and export() when called.
import type { ArchiveFormat } from "./archive/mod.ts";
import { LocalContentStore } from "./content/local.ts";
import {
  collectGarbage,
  type DiskUsage,
  diskUsage,
  GC_LABELS,
  type GcResult,
  type Image,
  MetadataStore,
  validateNameTarget,
} from "./metadata/mod.ts";
import { isIndexType, RegistryClient, type RegistryClientOptions } from "./registry/client.ts";
import { compressionOf, decompressChunks } from "./registry/decompress.ts";
import {
  fetchImage,
  type FetchStats,
  type LayerChunks,
  readSmall,
  selectManifests,
  storeSmall,
  streamChunks,
} from "./registry/fetch.ts";
import {
  configPlatform,
  defaultPlatform,
  formatPlatform,
  type PlatformMatcher,
  platformMatcher,
} from "./registry/platforms.ts";
import type { TransferProgress } from "./registry/progress.ts";
import { pushImage, type PushResult } from "./registry/push.ts";
import { formatReference, parseReference, type Reference } from "./registry/reference.ts";
import { openNativeSnapshotter } from "./snapshots/native.ts";
import { openOverlaySnapshotter } from "./snapshots/overlay.ts";
import {
  type ContentProvider,
  type ContentStore,
  type Descriptor,
  type Digest,
  MEDIA_TYPES,
  type Mount,
  type Platform,
  type Snapshotter,
} from "./types.ts";
import { chainIds, unpackLayer } from "./unpack/mod.ts";

/** The namespace an operation works in (default `default`). */
export interface NamespaceOptions {
  namespace?: string;
}

/** Options for {@link ImageService}. */
export interface ImageServiceOptions {
  db: MetadataStore;
  /** The backing content store. */
  content: ContentStore;
  /** The backing snapshotters, by their names. */
  snapshotters: Snapshotter[];
  /** The snapshotter used when none is named (default: `overlayfs` when present, else the first). */
  defaultSnapshotter?: string;
  /** The registry client (default: one with default options). */
  registry?: RegistryClient;
  /** How long a pull's or import's lease lives if it is never removed (default 24 h). */
  leaseExpiry?: number;
  /** The largest uncompressed layer accepted, in bytes (default: no limit). */
  maxLayerSize?: number;
}

/** Options for {@link ImageService.open}. */
export interface OpenImageServiceOptions {
  /** A registry client, or the options of one to make. */
  registry?: RegistryClient | RegistryClientOptions;
  /** Which snapshotters to open (default: `overlayfs` when the kernel has it, and `native`). */
  snapshotters?: Array<"overlayfs" | "native">;
  defaultSnapshotter?: string;
  leaseExpiry?: number;
  maxLayerSize?: number;
  /** fsync content on commit (default true). */
  sync?: boolean;
}

/** Progress of a pull: the transfer (from the registry client) and the unpacking. */
export interface PullProgress {
  transfer?: TransferProgress;
  unpack: { done: number; total: number };
}

/** Options for {@link ImageService.pull}. */
export interface PullOptions extends NamespaceOptions {
  /** The platform to pull (default: this machine's), or `all`. */
  platform?: Platform | "all";
  /** Unpack into snapshots (default true); with `platform: "all"`, the manifest for this machine is unpacked. */
  unpack?: boolean;
  /** The snapshotter to unpack into (default: the service's default). */
  snapshotter?: string;
  /** Layers downloaded at once (default 3). */
  concurrency?: number;
  onProgress?: (progress: PullProgress) => void;
  signal?: AbortSignal;
}

/** What {@link ImageService.pull} did. */
export interface PullResult {
  image: Image;
  /** The snapshot the image unpacked to, when it was unpacked. */
  unpacked?: UnpackResult;
  stats: FetchStats;
}

/** Where an image is unpacked. */
export interface UnpackResult {
  snapshotter: string;
  /** The top snapshot's name: the chain ID of the last layer (undefined for an image without layers). */
  chainId?: Digest;
  /** Layers unpacked now (the others were unpacked already). */
  unpackedLayers: number;
}

/** Options for {@link ImageService.push}. */
export interface PushOptions extends NamespaceOptions {
  /** Where to push (default: the image's own name). */
  remote?: string;
  tags?: string[];
  concurrency?: number;
  chunkSize?: number;
  onProgress?: (progress: TransferProgress) => void;
  signal?: AbortSignal;
}

/** Options for {@link ImageService.remove}. */
export interface RemoveOptions extends NamespaceOptions {
  /** Collect garbage before returning, so the space is free (default false). */
  sync?: boolean;
}

/** Options for {@link ImageService.tag}. */
export interface TagOptions extends NamespaceOptions {
  /** Repoint `target` when it exists (default: refuse with AlreadyExists). */
  force?: boolean;
}

/** Options for {@link ImageService.import}. */
export interface ImportOptions extends NamespaceOptions {
  /** The name for the image, overriding the archive's (an archive of one image only). */
  name?: string;
  /** Unpack the imported images for this machine's platform (default true). */
  unpack?: boolean;
  snapshotter?: string;
}

/** What {@link ImageService.import} did. */
export interface ImportResult {
  format: ArchiveFormat;
  images: Image[];
}

/** Options for {@link ImageService.export}. */
export interface ExportOptions extends NamespaceOptions {
  /** Which platforms of multi-platform images to include (default: every one in the store). */
  platforms?: PlatformMatcher;
}

/** Options for {@link ImageService.unpack}. */
export interface UnpackOptions extends NamespaceOptions {
  snapshotter?: string;
  /** The platform whose manifest to unpack (default: this machine's). */
  platform?: Platform;
  signal?: AbortSignal;
}

/** The parts of an OCI image config (image-spec config.md) a container uses. */
export interface OciImageConfig {
  architecture?: string;
  os?: string;
  config?: {
    User?: string;
    ExposedPorts?: Record<string, unknown>;
    Env?: string[];
    Entrypoint?: string[] | null;
    Cmd?: string[] | null;
    Volumes?: Record<string, unknown>;
    WorkingDir?: string;
    Labels?: Record<string, string>;
    StopSignal?: string;
  };
  rootfs?: { type: string; diff_ids: string[] };
}

/** Options for {@link ImageService.prepareRootfs}. */
export interface PrepareRootfsOptions extends NamespaceOptions {
  snapshotter?: string;
  /** A read-only view instead of a writable snapshot. */
  readonly?: boolean;
  labels?: Record<string, string>;
  platform?: Platform;
}

/** Options for {@link ImageService.prune}. */
export interface PruneOptions extends NamespaceOptions {
  /** Also remove every image no container of the namespace uses (default: only collect garbage). */
  all?: boolean;
}

/** What {@link ImageService.prune} did. */
export interface PruneResult {
  /** Images removed. */
  images: string[];
  gc: GcResult;
  /**
   * Bytes deleted from the disk: blobs and snapshots no namespace records any
   * more (a blob another namespace also records stays), and stale ingests.
   * The collection is the whole store's, so garbage of other namespaces counts too.
   */
  reclaimed: number;
}

/** A lease {@link ImageService.removeStaleLeases} removed. */
export interface RemovedLease {
  namespace: string;
  id: string;
  /** Its {@link LEASE_PURPOSE_LABEL}: `pull <ref>`, `import`, `unpack <ref>`… */
  purpose: string;
}

/** What an image unpacks: its manifest's config and layers, and their chain IDs. */
interface UnpackPlan {
  manifest: Descriptor;
  config: Descriptor;
  layers: Descriptor[];
  diffIds: Digest[];
  chainIds: Digest[];
}

const DAY = 24 * 60 * 60 * 1000;
/** The label on every lease the image service takes (its value says what for). */
export const LEASE_PURPOSE_LABEL = "io.tug.lease.purpose";
/** Unpack plans kept (see #localPlan). */
const PLAN_CACHE = 32;
/** Download buffers a layer being unpacked may hold (the rest waits): two reads of 256 KiB. */
const TEE_BYTES = 512 << 10;

function ns(options: NamespaceOptions | undefined): string {
  return options?.namespace ?? "default";
}

function normalize(name: string): string {
  return formatReference(parseReference(name));
}

function parseJson<T>(bytes: Uint8Array, what: string): T {
  try {
    return JSON.parse(new TextDecoder().decode(bytes)) as T;
  } catch (err) {
    throw new InvalidArgument(`Parse ${what}: ${(err as Error).message}`, { cause: err });
  }
}

/** The unpack plan of a manifest, given its bytes and the config's. */
function planOf(
  manifest: Descriptor,
  manifestBytes: Uint8Array,
  configBytes: Uint8Array,
): UnpackPlan {
  const doc = parseJson<{ config?: Descriptor; layers?: Descriptor[] }>(
    manifestBytes,
    `manifest ${manifest.digest}`,
  );
  if (!doc.config || !Array.isArray(doc.layers)) {
    throw new InvalidArgument(`Unpack image: ${manifest.digest} is not an image manifest`);
  }
  const config = parseJson<{ rootfs?: { diff_ids?: unknown } }>(
    configBytes,
    `config ${doc.config.digest}`,
  );
  const diffIds = config.rootfs?.diff_ids;
  if (!Array.isArray(diffIds) || !diffIds.every((d) => typeof d === "string")) {
    throw new InvalidArgument(`Unpack image: config ${doc.config.digest} has no rootfs.diff_ids`);
  }
  if (diffIds.length !== doc.layers.length) {
    throw new InvalidArgument(
      `Unpack image: manifest ${manifest.digest} has ${doc.layers.length} layers but its config lists ${diffIds.length} diff IDs`,
    );
  }
  return { manifest, config: doc.config, layers: doc.layers, diffIds, chainIds: chainIds(diffIds) };
}

/**
 * Hands layer streams from the fetcher to the unpacker. The download of a
 * layer the unpacker will need is held (the fetcher buffers a little, then
 * waits) until the unpacker takes it, so each layer is unpacked from its
 * download, never written and read back. Downloads of other layers are let
 * go at full speed into the store. Should every download slot be held by a
 * later layer while the one the unpacker wants has not started, the held
 * downloads are let go (to the store) so the fetch cannot stall.
 */
class LayerFeed {
  readonly #needed: Set<Digest>;
  readonly #slots: number;
  #held = new Map<Digest, LayerChunks>();
  #want: Digest | undefined;
  #resolve: ((source: LayerChunks | "store") => void) | undefined;
  #reject: ((err: unknown) => void) | undefined;
  #committed = new Set<Digest>();
  #settled = new Set<Digest>();
  #settleWaiters = new Map<Digest, () => void>();
  #failure: { error: unknown } | undefined;
  #fetchEnded = false;

  constructor(needed: Iterable<Digest>, slots: number) {
    this.#needed = new Set(needed);
    this.#slots = slots;
  }

  readonly onLayer = (layer: Descriptor, chunks: LayerChunks): void => {
    if (this.#want === layer.digest && this.#resolve) {
      this.#needed.delete(layer.digest);
      this.#hand(chunks);
    } else if (this.#needed.has(layer.digest) && !this.#failure) {
      this.#held.set(layer.digest, chunks);
      this.#unstall();
    } else {
      chunks.cancel();
    }
  };

  readonly onProgress = (p: TransferProgress): void => {
    for (const b of p.blobs) {
      if (b.status !== "done" && b.status !== "exists" && b.status !== "failed") continue;
      this.#settle(b.digest);
      if (b.status === "failed") continue;
      this.#committed.add(b.digest);
      if (this.#want === b.digest && this.#resolve && !this.#held.has(b.digest)) {
        this.#hand("store");
      }
    }
  };

  /** Lets the held downloads go when they take every slot and the wanted layer is not among them. */
  #unstall(): void {
    if (this.#want === undefined || this.#held.size < this.#slots) return;
    for (const chunks of this.#held.values()) chunks.cancel();
    this.#held.clear();
  }

  #settle(digest: Digest): void {
    this.#settled.add(digest);
    const w = this.#settleWaiters.get(digest);
    this.#settleWaiters.delete(digest);
    w?.();
  }

  #hand(source: LayerChunks | "store"): void {
    const resolve = this.#resolve!;
    this.#want = undefined;
    this.#resolve = undefined;
    this.#reject = undefined;
    resolve(source);
  }

  /** The download of `digest` (held, or when it starts), or "store" when it is committed already. */
  take(digest: Digest): Promise<LayerChunks | "store"> {
    if (this.#failure) return Promise.reject(this.#failure.error);
    this.#needed.delete(digest);
    const held = this.#held.get(digest);
    if (held) {
      this.#held.delete(digest);
      return Promise.resolve(held);
    }
    if (this.#fetchEnded || this.#committed.has(digest)) return Promise.resolve("store");
    return new Promise((resolve, reject) => {
      this.#want = digest;
      this.#resolve = resolve;
      this.#reject = reject;
      this.#unstall();
    });
  }

  /** Layers the unpacker will not take after all (unpacked already): their downloads go to the store. */
  skip(digest: Digest): void {
    this.#needed.delete(digest);
    const held = this.#held.get(digest);
    this.#held.delete(digest);
    held?.cancel();
  }

  /** Resolves once the download of `digest` has ended (committed or failed), or the whole fetch has. */
  settled(digest: Digest): Promise<void> {
    if (this.#fetchEnded || this.#settled.has(digest)) return Promise.resolve();
    return new Promise((resolve) => this.#settleWaiters.set(digest, resolve));
  }

  /** The fetch ended: with `error`, takes fail; without, whatever is awaited comes from the store. */
  fetchEnded(error?: { error: unknown }): void {
    this.#fetchEnded = true;
    for (const w of this.#settleWaiters.values()) w();
    this.#settleWaiters.clear();
    if (error) this.fail(error.error);
    else if (this.#resolve) this.#hand("store");
  }

  /** Stops: takes fail with `error`, held downloads are let go. */
  fail(error: unknown): void {
    this.#failure ??= { error };
    for (const chunks of this.#held.values()) chunks.cancel();
    this.#held.clear();
    const reject = this.#reject;
    this.#want = undefined;
    this.#resolve = undefined;
    this.#reject = undefined;
    reject?.(error);
  }
}

/**
 * The image service (see the module documentation).
 *
 * @example
 * ```ts
 * const images = await ImageService.open("/var/lib/tug");
 * const { image } = await images.pull("busybox", { onProgress: (p) => draw(p) });
 * const mounts = await images.prepareRootfs(image.name, "web-1");
 * ```
 */
export class ImageService {
  readonly db: MetadataStore;
  readonly content: ContentStore;
  readonly registry: RegistryClient;
  readonly defaultSnapshotter: string;
  readonly #snapshotters: Map<string, Snapshotter>;
  readonly #leaseExpiry: number;
  readonly #maxLayerSize: number | undefined;
  #owned: (() => Promise<void> | void)[] = [];
  #gc: Promise<unknown> = Promise.resolve();
  readonly #plans = new Map<string, UnpackPlan & { configBytes: Uint8Array }>();

  constructor(options: ImageServiceOptions) {
    this.db = options.db;
    this.content = options.content;
    this.registry = options.registry ?? new RegistryClient();
    this.#snapshotters = new Map(options.snapshotters.map((s) => [s.name, s]));
    if (this.#snapshotters.size === 0) {
      throw new InvalidArgument("Open image service: no snapshotter given");
    }
    this.defaultSnapshotter = options.defaultSnapshotter ??
      (this.#snapshotters.has("overlayfs") ? "overlayfs" : options.snapshotters[0]!.name);
    this.#snapshotter(this.defaultSnapshotter);
    this.#leaseExpiry = options.leaseExpiry ?? DAY;
    this.#maxLayerSize = options.maxLayerSize;
  }

  /**
   * Opens the image service rooted at `root`: `metadata.db`, `content/`,
   * `snapshots/<name>/`. `close()` closes what this opened.
   */
  static async open(root: string, options: OpenImageServiceOptions = {}): Promise<ImageService> {
    await Deno.mkdir(root, { recursive: true, mode: 0o700 });
    const owned: (() => Promise<void> | void)[] = [];
    try {
      const db = MetadataStore.open(join(root, "metadata.db"));
      owned.push(() => db.close());
      const content = await LocalContentStore.open(join(root, "content"), {
        sync: options.sync ?? true,
      });
      const names = options.snapshotters ??
        (Deno.readTextFileSync("/proc/filesystems").includes("overlay")
          ? ["overlayfs", "native"] as const
          : ["native"] as const);
      const snapshotters: Snapshotter[] = [];
      for (const name of names) {
        const dir = join(root, "snapshots", name);
        const sn = name === "overlayfs"
          ? await openOverlaySnapshotter(dir)
          : await openNativeSnapshotter(dir);
        owned.push(() => sn.close());
        snapshotters.push(sn);
      }
      const registry = options.registry instanceof RegistryClient
        ? options.registry
        : new RegistryClient(options.registry ?? {});
      if (!(options.registry instanceof RegistryClient)) owned.push(() => registry.close());
      const service = new ImageService({
        db,
        content,
        snapshotters,
        registry,
        ...(options.defaultSnapshotter ? { defaultSnapshotter: options.defaultSnapshotter } : {}),
        ...(options.leaseExpiry !== undefined ? { leaseExpiry: options.leaseExpiry } : {}),
        ...(options.maxLayerSize !== undefined ? { maxLayerSize: options.maxLayerSize } : {}),
      });
      service.#owned = owned;
      return service;
    } catch (err) {
      for (const close of owned.reverse()) await Promise.resolve(close()).catch(() => {});
      throw err;
    }
  }

  /** The names of the snapshotters this service has. */
  get snapshotters(): string[] {
    return [...this.#snapshotters.keys()];
  }

  /** The backing snapshotter `name` (default: the default one); throws InvalidArgument for an unknown name. */
  snapshotter(name?: string): Snapshotter {
    return this.#snapshotter(name);
  }

  #snapshotter(name: string | undefined): Snapshotter {
    const sn = this.#snapshotters.get(name ?? this.defaultSnapshotter);
    if (!sn) {
      throw new InvalidArgument(
        `Unknown snapshotter ${JSON.stringify(name)}: this service has ${
          this.snapshotters.join(", ")
        }`,
      );
    }
    return sn;
  }

  /**
   * The image record `name` (as given, or normalized: `busybox` finds
   * `docker.io/library/busybox:latest`), or for `sha256:<64 hex>` the one
   * image whose target has that digest (the DIGEST `images ls` shows; as
   * Docker takes an image by its ID). Several images of that digest are
   * refused (FailedPrecondition): name one.
   */
  #find(namespace: string, name: string): Image {
    try {
      return this.db.images.get(namespace, name);
    } catch (err) {
      if (!(err instanceof NotFound)) throw err;
      if (/^sha256:[0-9a-f]{64}$/.test(name)) {
        const matches = this.db.images.list(namespace).filter((i) => i.target.digest === name);
        if (matches.length === 0) {
          throw new NotFound(`No such image ${name} in namespace ${namespace}`, { cause: err });
        }
        if (matches.length > 1) {
          throw new FailedPrecondition(
            `Image ${name} has ${matches.length} names in namespace ${namespace} (${
              matches.map((i) => i.name).join(", ")
            }): name the one you mean`,
          );
        }
        return matches[0]!;
      }
      let normalized: string;
      try {
        normalized = normalize(name);
      } catch {
        throw err;
      }
      if (normalized === name) throw err;
      return this.db.images.get(namespace, normalized);
    }
  }

  /**
   * Removes the leases an image service took (labelled
   * {@link LEASE_PURPOSE_LABEL}) in every namespace, and returns them. For a
   * process that is the only user of the store and has just opened it (the
   * daemon): a lease left by a pull or import of an earlier run, which was
   * killed, protects nothing that run will finish, but would hold its partial
   * unpack and the image's snapshots for a day. Leases without the label are
   * left alone; the ingests they held stay resumable for the ingest grace
   * period. Garbage collection frees what they held.
   */
  removeStaleLeases(): RemovedLease[] {
    const removed: RemovedLease[] = [];
    this.db.transaction(() => {
      for (const { name: namespace } of this.db.namespaces.list()) {
        for (const lease of this.db.leases.list(namespace)) {
          const purpose = lease.labels[LEASE_PURPOSE_LABEL];
          if (purpose === undefined) continue;
          this.db.leases.delete(namespace, lease.id);
          removed.push({ namespace, id: lease.id, purpose });
        }
      }
    });
    return removed;
  }

  /** Runs `fn` holding a new lease in `namespace`; the lease is removed afterwards, success or not. */
  async #withLease<T>(
    namespace: string,
    purpose: string,
    fn: (lease: string) => Promise<T>,
  ): Promise<T> {
    const lease = this.#takeLease(namespace, purpose);
    try {
      return await fn(lease.id);
    } finally {
      lease.release();
    }
  }

  /** A new lease in `namespace`, and its removal (once; later calls do nothing). */
  #takeLease(namespace: string, purpose: string): { id: string; release(): void } {
    const { id } = this.db.leases.create(namespace, {
      expiresIn: this.#leaseExpiry,
      labels: { [LEASE_PURPOSE_LABEL]: purpose.slice(0, 1000) },
    });
    let released = false;
    return {
      id,
      release: () => {
        if (released) return;
        released = true;
        // Gone already only if garbage collection found it expired; either way it protects nothing now.
        if (this.db.leases.list(namespace).some((l) => l.id === id)) {
          this.db.leases.delete(namespace, id);
        }
      },
    };
  }

  /**
   * Pulls `ref` (normalized as Docker does: `busybox` is
   * `docker.io/library/busybox:latest`) into the namespace and, unless told
   * otherwise, unpacks it (see the module documentation).
   */
  async pull(ref: string, options: PullOptions = {}): Promise<PullResult> {
    const namespace = ns(options);
    const reference = parseReference(ref);
    const name = formatReference(reference);
    const platform = options.platform ?? defaultPlatform();
    const wantUnpack = options.unpack ?? true;
    const backendSn = wantUnpack ? this.#snapshotter(options.snapshotter) : undefined;
    return await this.#withLease(namespace, `pull ${name}`, async (lease) => {
      const content = this.db.contentStore(namespace, this.content, { lease });
      const abort = new AbortController();
      const outer = options.signal;
      const onAbort = () => abort.abort(outer!.reason);
      if (outer?.aborted) abort.abort(outer.reason);
      outer?.addEventListener("abort", onAbort, { once: true });
      try {
        let plan: UnpackPlan | undefined;
        // The config the plan fetched: the fetch below finds it stored, and counts it as present.
        let configFetched: Descriptor | undefined;
        let pinned: Reference = reference;
        if (backendSn) {
          const resolved = await this.#resolvePlan(reference, content, {
            platform: platform === "all" ? defaultPlatform() : platform,
            optional: platform === "all",
            strict: options.platform !== undefined && options.platform !== "all",
            signal: abort.signal,
          });
          plan = resolved.plan;
          configFetched = resolved.configFetched;
          pinned = { ...reference, digest: resolved.target.digest };
        }
        const feed = new LayerFeed(
          plan?.layers.map((l) => l.digest) ?? [],
          options.concurrency ?? 3,
        );
        let transfer: TransferProgress | undefined;
        const unpackProgress = { done: 0, total: plan?.layers.length ?? 0 };
        const report = () =>
          options.onProgress?.({
            ...(transfer ? { transfer } : {}),
            unpack: { ...unpackProgress },
          });
        const sn = backendSn ? this.db.snapshotter(namespace, backendSn, { lease }) : undefined;
        let current: Digest | undefined;
        const unpacking = plan && sn
          ? this.#unpackPlan(plan, sn, {
            source: async (layer) => {
              current = layer.digest;
              const s = await feed.take(layer.digest);
              return s === "store" ? streamChunks(await content.read(layer.digest)) : s;
            },
            onSkip: (layer) => feed.skip(layer.digest),
            onLayerDone: () => {
              unpackProgress.done++;
              report();
            },
            signal: abort.signal,
          })
          : Promise.resolve(undefined);
        const fetching = fetchImage(this.registry, pinned, {
          store: content,
          platform,
          strictPlatform: options.platform !== undefined && options.platform !== "all",
          ...(options.concurrency !== undefined ? { concurrency: options.concurrency } : {}),
          teeBufferBytes: TEE_BYTES,
          ...(plan ? { onLayerChunks: feed.onLayer } : {}),
          onProgress: (p) => {
            feed.onProgress(p);
            transfer = p;
            report();
          },
          signal: abort.signal,
        }).then((fetched) => {
          feed.fetchEnded();
          return fetched;
        }, (err) => {
          feed.fetchEnded({ error: err });
          abort.abort(err);
          throw err;
        });
        const unpackingDone = unpacking.catch(async (err) => {
          feed.fail(err);
          // A layer that fails to unpack may be one whose download is corrupt: let its download
          // end first, so that the digest error (the cause) is what the caller sees.
          if (current !== undefined) await feed.settled(current);
          abort.abort(err);
          throw err;
        });
        // Both settle before the lease goes: nothing keeps writing after the pull returns.
        const [f, u] = await Promise.allSettled([fetching, unpackingDone]);
        if (f.status === "rejected" && (u.status === "fulfilled" || f.reason !== u.reason)) {
          throw f.reason;
        }
        if (u.status === "rejected") throw u.reason;
        const fetched = (f as PromiseFulfilledResult<Awaited<typeof fetching>>).value;
        const unpacked = u.value;
        if (plan && unpacked && backendSn) {
          await this.#labelUnpacked(content, plan, backendSn.name);
        }
        const image = this.db.images.put(namespace, { name, target: fetched.target });
        return {
          image,
          ...(unpacked && backendSn
            ? { unpacked: { snapshotter: backendSn.name, ...unpacked } }
            : {}),
          stats: configFetched && fetched.stats.existing > 0
            ? {
              ...fetched.stats,
              fetched: fetched.stats.fetched + 1,
              existing: fetched.stats.existing - 1,
              bytes: fetched.stats.bytes + configFetched.size,
            }
            : fetched.stats,
        };
      } finally {
        outer?.removeEventListener("abort", onAbort);
      }
    });
  }

  /** Resolves `reference` and reads the manifest to unpack and its config (storing the config). */
  async #resolvePlan(
    reference: Reference,
    content: ContentStore,
    options: { platform: Platform; optional: boolean; strict?: boolean; signal: AbortSignal },
  ): Promise<{ target: Descriptor; plan?: UnpackPlan; configFetched?: Descriptor }> {
    const sig = { signal: options.signal };
    const resolved = await this.registry.resolve(reference, sig);
    const target = resolved.descriptor;
    let manifest = target;
    let bytes = resolved.manifest ?? await this.registry.fetchManifest(reference, target, sig);
    if (isIndexType(target.mediaType)) {
      const index = parseJson<{ manifests?: Descriptor[] }>(bytes, `index ${resolved.name}`);
      let chosen: Descriptor[];
      try {
        chosen = selectManifests(index.manifests ?? [], options.platform, `index ${resolved.name}`);
      } catch (err) {
        if (options.optional && err instanceof NotFound) return { target };
        throw err;
      }
      manifest = chosen[0]!;
      bytes = await this.registry.fetchManifest(reference, manifest, sig);
    }
    const doc = parseJson<{ config?: Descriptor }>(bytes, `manifest ${manifest.digest}`);
    if (!doc.config) {
      throw new InvalidArgument(`Pull ${resolved.name}: manifest ${manifest.digest} has no config`);
    }
    const { bytes: config, fetched } = await this.#config(
      reference,
      doc.config,
      content,
      options.signal,
    );
    if (options.strict && !isIndexType(target.mediaType)) {
      // An image without an index, asked for another platform: refused before anything unpacks.
      const c = parseJson<{ os?: unknown; architecture?: unknown; variant?: unknown }>(
        config,
        `config ${doc.config.digest}`,
      );
      const have = configPlatform(c);
      if (!platformMatcher(options.platform).match(have)) {
        throw new NotFound(
          `${resolved.name} is an image for ${formatPlatform(have)}, not for ${
            formatPlatform(options.platform)
          } (it has no index of platforms to choose from)`,
        );
      }
    }
    return {
      target,
      plan: planOf(manifest, bytes, config),
      ...(fetched ? { configFetched: doc.config } : {}),
    };
  }

  /** The config's bytes: from the store, or fetched, verified and stored. */
  async #config(
    reference: Reference,
    desc: Descriptor,
    content: ContentStore,
    signal: AbortSignal,
  ): Promise<{ bytes: Uint8Array; fetched: boolean }> {
    const { bytes, stored } = await readSmall(this.registry, reference, desc, {
      store: content,
      signal,
    });
    if (!stored) await storeSmall(content, desc, bytes, {}, signal);
    return { bytes, fetched: !stored };
  }

  /** Unpacks the layers of `plan` that are not unpacked yet, in order. */
  async #unpackPlan(
    plan: UnpackPlan,
    sn: Snapshotter,
    args: {
      source: (layer: Descriptor) => Promise<LayerChunks>;
      /** Called for each layer that is unpacked already. */
      onSkip?: (layer: Descriptor) => void;
      onLayerDone?: () => void;
      signal?: AbortSignal;
    },
  ): Promise<Omit<UnpackResult, "snapshotter">> {
    const n = plan.layers.length;
    let start = 0;
    for (let i = n - 1; i >= 0; i--) {
      try {
        const info = await sn.stat(plan.chainIds[i]!);
        if (info.kind === "committed") {
          start = i + 1;
          break;
        }
      } catch (err) {
        if (!(err instanceof NotFound)) throw err;
      }
    }
    for (let i = 0; i < start; i++) {
      args.onSkip?.(plan.layers[i]!);
      args.onLayerDone?.();
    }
    for (let i = start; i < n; i++) {
      args.signal?.throwIfAborted();
      const layer = plan.layers[i]!;
      const chunks = await args.source(layer);
      let layerChunks;
      try {
        layerChunks = decompressChunks(chunks, compressionOf(layer.mediaType));
      } catch (err) {
        chunks.cancel();
        throw err;
      }
      await unpackLayer(sn, plan.chainIds[i]!, layerChunks, {
        ...(i > 0 ? { parent: plan.chainIds[i - 1]! } : {}),
        expectedDiffId: plan.diffIds[i]!,
        ...(this.#maxLayerSize !== undefined ? { maxSize: this.#maxLayerSize } : {}),
        ...(args.signal ? { signal: args.signal } : {}),
      });
      args.onLayerDone?.();
    }
    return { ...(n > 0 ? { chainId: plan.chainIds[n - 1]! } : {}), unpackedLayers: n - start };
  }

  /** Labels the config with the top snapshot, so garbage collection keeps the chain while the image lives. */
  async #labelUnpacked(
    content: ContentStore,
    plan: UnpackPlan,
    snapshotter: string,
  ): Promise<void> {
    if (plan.chainIds.length === 0) return;
    await content.update(plan.config.digest, {
      [`${GC_LABELS.refSnapshotPrefix}${snapshotter}`]: plan.chainIds[plan.chainIds.length - 1]!,
    });
  }

  /**
   * The unpack plan of a stored image for `platform`. Plans are kept for the
   * last few images asked for: their blobs are immutable (named by digest), and
   * each container create and start asks again.
   */
  async #localPlan(
    content: ContentProvider,
    image: Pick<Image, "name" | "target">,
    platform: Platform,
    namespace: string,
  ): Promise<UnpackPlan & { configBytes: Uint8Array }> {
    const key = `${namespace}\0${image.target.digest}\0${JSON.stringify(platform)}`;
    const cached = this.#plans.get(key);
    if (cached) return cached;
    const plan = await this.#readPlan(content, image, platform);
    this.#plans.set(key, plan);
    if (this.#plans.size > PLAN_CACHE) this.#plans.delete(this.#plans.keys().next().value!);
    return plan;
  }

  async #readPlan(
    content: ContentProvider,
    image: Pick<Image, "name" | "target">,
    platform: Platform,
  ): Promise<UnpackPlan & { configBytes: Uint8Array }> {
    let manifest = image.target;
    let bytes = await content.readBytes(manifest.digest);
    if (isIndexType(manifest.mediaType)) {
      const index = parseJson<{ manifests?: Descriptor[] }>(bytes, `index ${manifest.digest}`);
      manifest = selectManifests(index.manifests ?? [], platform, `image ${image.name}`)[0]!;
      bytes = await content.readBytes(manifest.digest);
    } else if (
      manifest.mediaType !== MEDIA_TYPES.ociManifest &&
      manifest.mediaType !== MEDIA_TYPES.dockerManifest
    ) {
      throw new InvalidArgument(
        `Unpack image ${image.name}: its target is a ${manifest.mediaType}`,
      );
    }
    const doc = parseJson<{ config?: Descriptor }>(bytes, `manifest ${manifest.digest}`);
    if (!doc.config) {
      throw new InvalidArgument(
        `Unpack image ${image.name}: manifest ${manifest.digest} has no config`,
      );
    }
    const configBytes = await content.readBytes(doc.config.digest);
    return { ...planOf(manifest, bytes, configBytes), configBytes };
  }

  /**
   * Unpacks the stored image `name` into a snapshotter (the layers not
   * unpacked yet), reading the layers from the content store.
   */
  async unpack(name: string, options: UnpackOptions = {}): Promise<UnpackResult> {
    const namespace = ns(options);
    const image = this.#find(namespace, name);
    const backendSn = this.#snapshotter(options.snapshotter);
    return await this.#withLease(namespace, `unpack ${image.name}`, async (lease) => {
      const content = this.db.contentStore(namespace, this.content, { lease });
      const sn = this.db.snapshotter(namespace, backendSn, { lease });
      const plan = await this.#localPlan(
        content,
        image,
        options.platform ?? defaultPlatform(),
        namespace,
      );
      const result = await this.#unpackPlan(plan, sn, {
        source: async (layer) => streamChunks(await content.read(layer.digest)),
        ...(options.signal ? { signal: options.signal } : {}),
      });
      await this.#labelUnpacked(content, plan, backendSn.name);
      return { snapshotter: backendSn.name, ...result };
    });
  }

  /**
   * The OCI image config of the stored image `name` for a platform (default:
   * this machine's): what a container made from it runs by default.
   */
  async config(
    name: string,
    options: NamespaceOptions & { platform?: Platform } = {},
  ): Promise<OciImageConfig> {
    const namespace = ns(options);
    const image = this.#find(namespace, name);
    const content = this.db.contentStore(namespace, this.content);
    const plan = await this.#localPlan(
      content,
      image,
      options.platform ?? defaultPlatform(),
      namespace,
    );
    return JSON.parse(new TextDecoder().decode(plan.configBytes)) as OciImageConfig;
  }

  /**
   * Prepares the snapshot `key` for a container from image `image` (unpacking
   * it first when needed) and returns its Mount records: a writable snapshot,
   * or a read-only view with `readonly`. Garbage collection keeps the snapshot
   * only while a container record names it: create the container record
   * (with this snapshotter and key) first.
   */
  async prepareRootfs(
    image: string,
    key: string,
    options: PrepareRootfsOptions = {},
  ): Promise<Mount[]> {
    const namespace = ns(options);
    const backendSn = this.#snapshotter(options.snapshotter);
    const sn = this.db.snapshotter(namespace, backendSn);
    const opts = options.labels ? { labels: options.labels } : {};
    const prepare = (chainId: string | undefined) =>
      options.readonly ? sn.view(key, chainId, opts) : sn.prepare(key, chainId, opts);
    // Usually the image is unpacked already: then no lease and no labels to write, only the check.
    const content = this.db.contentStore(namespace, this.content);
    const plan = await this.#localPlan(
      content,
      this.#find(namespace, image),
      options.platform ?? defaultPlatform(),
      namespace,
    );
    const top = plan.chainIds.at(-1);
    if (top !== undefined && (await sn.stat(top).catch(() => undefined))?.kind === "committed") {
      try {
        return await prepare(top);
      } catch (err) {
        // The image's snapshot went away since (a prune): unpack it again below.
        if (!(err instanceof NotFound)) throw err;
      }
    }
    const { chainId } = await this.unpack(image, {
      namespace,
      snapshotter: backendSn.name,
      ...(options.platform ? { platform: options.platform } : {}),
    });
    return await prepare(chainId);
  }

  /**
   * Pushes image `name` to its registry (or to `remote`). A lease holds the
   * image's content meanwhile, so removing the image does not cut it short.
   */
  async push(name: string, options: PushOptions = {}): Promise<PushResult> {
    const namespace = ns(options);
    const image = this.#find(namespace, name);
    return await this.#withLease(namespace, `push ${image.name}`, async (lease) => {
      this.#hold(namespace, lease, [image]);
      return await pushImage(this.registry, options.remote ?? image.name, image.target, {
        store: this.db.contentStore(namespace, this.content),
        ...(options.tags ? { tags: options.tags } : {}),
        ...(options.concurrency !== undefined ? { concurrency: options.concurrency } : {}),
        ...(options.chunkSize !== undefined ? { chunkSize: options.chunkSize } : {}),
        ...(options.onProgress ? { onProgress: options.onProgress } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
      });
    });
  }

  /**
   * Makes `lease` hold the content of `images`: their targets, and through
   * them (garbage collection follows index, manifests, configs and layers)
   * everything they refer to. Synchronous, so no collection runs between
   * finding the images and holding them.
   */
  #hold(namespace: string, lease: string, images: Image[]): void {
    this.db.transaction(() => {
      for (const image of images) {
        this.db.leases.addResource(namespace, {
          lease,
          resource: { type: "content", digest: image.target.digest },
        });
      }
    });
  }

  /** The images of the namespace, by name. */
  list(options: NamespaceOptions = {}): Image[] {
    return this.db.images.list(ns(options));
  }

  /** The image `name` (as recorded, or normalized); throws NotFound. */
  get(name: string, options: NamespaceOptions = {}): Image {
    return this.#find(ns(options), name);
  }

  /** Removes the image record `name`; its content and snapshots go at the next garbage collection (at once with `sync`). */
  async remove(name: string, options: RemoveOptions = {}): Promise<void> {
    const namespace = ns(options);
    const image = this.#find(namespace, name);
    this.db.images.delete(namespace, image.name);
    if (options.sync) await this.gc();
  }

  /** Records `target` as another name of image `source`; throws AlreadyExists unless `force`. */
  tag(source: string, target: string, options: TagOptions = {}): Image {
    const namespace = ns(options);
    const image = this.#find(namespace, source);
    const name = normalize(target);
    const input = { name, target: image.target, labels: image.labels };
    return options.force
      ? this.db.images.put(namespace, input)
      : this.db.images.create(namespace, input);
  }

  /**
   * Imports an OCI image-layout or `docker save` tar (plain, gzip or zstd)
   * and records its images in one transaction; nothing is half-imported.
   */
  async import(
    input: ReadableStream<Uint8Array>,
    options: ImportOptions = {},
  ): Promise<ImportResult> {
    const namespace = ns(options);
    const backendSn = (options.unpack ?? true) ? this.#snapshotter(options.snapshotter) : undefined;
    const { importArchive } = await import("./archive/mod.ts");
    return await this.#withLease(namespace, "import", async (lease) => {
      const content = this.db.contentStore(namespace, this.content, { lease });
      const result = await importArchive(input, {
        content,
        ...(options.name !== undefined ? { name: options.name } : {}),
      });
      // A name whose digest is not the image's refuses the whole import, before any unpacking.
      for (const image of result.images) validateNameTarget(image.name, image.target);
      // Unpacked before any image is recorded: an archive whose layer is refused leaves no image
      // (its content and snapshots go with the lease).
      if (backendSn) {
        const sn = this.db.snapshotter(namespace, backendSn, { lease });
        for (const image of result.images) {
          let plan: UnpackPlan;
          try {
            plan = await this.#localPlan(content, image, defaultPlatform(), namespace);
          } catch (err) {
            if (err instanceof NotFound) continue; // not for this platform
            throw err;
          }
          await this.#unpackPlan(plan, sn, {
            source: async (layer) => streamChunks(await content.read(layer.digest)),
          });
          await this.#labelUnpacked(content, plan, backendSn.name);
        }
      }
      const images = this.db.transaction(() =>
        result.images.map((i) => this.db.images.put(namespace, { name: i.name, target: i.target }))
      );
      return { format: result.format, images };
    });
  }

  /**
   * Exports images `names` as one tar that `docker load` and OCI tools read.
   * A lease holds the images' content until the stream ends, fails or is
   * cancelled, so removing them meanwhile does not cut the archive short.
   */
  async export(names: string[], options: ExportOptions = {}): Promise<ReadableStream<Uint8Array>> {
    const namespace = ns(options);
    const { exportArchive } = await import("./archive/mod.ts");
    const images = names.map((n) => this.#find(namespace, n));
    const lease = this.#takeLease(namespace, `export ${images.map((i) => i.name).join(" ")}`);
    let tar: ReadableStream<Uint8Array>;
    try {
      this.#hold(namespace, lease.id, images);
      tar = await exportArchive(images.map((i) => ({ name: i.name, target: i.target })), {
        content: this.db.contentStore(namespace, this.content),
        ...(options.platforms ? { platforms: options.platforms } : {}),
        dockerPlatform: platformMatcher(defaultPlatform()),
      });
    } catch (err) {
      lease.release();
      throw err;
    }
    return passThrough(tar, { end: lease.release });
  }

  /** Disk usage of the namespace, per image and in total. */
  async usage(options: NamespaceOptions = {}): Promise<DiskUsage> {
    return await diskUsage(this.db, ns(options), {
      content: this.content,
      snapshotters: [...this.#snapshotters.values()],
    });
  }

  /**
   * Collects garbage across every namespace (one collection at a time); with
   * `measure`, also counts the bytes it deletes from the disk (`freed`).
   */
  gc(options: { measure?: boolean } = {}): Promise<GcResult> {
    const run = this.#gc.catch(() => {}).then(() =>
      collectGarbage(this.db, {
        content: this.content,
        snapshotters: [...this.#snapshotters.values()],
        ...(options.measure ? { measure: true } : {}),
      })
    );
    this.#gc = run;
    return run;
  }

  /** Removes unused images (with `all`) and collects garbage. */
  async prune(options: PruneOptions = {}): Promise<PruneResult> {
    const namespace = ns(options);
    const removed: string[] = [];
    if (options.all) {
      const used = new Set(
        this.db.containers.list(namespace).map((c) => c.image).filter((i) => i !== undefined),
      );
      this.db.transaction(() => {
        for (const image of this.db.images.list(namespace)) {
          if (used.has(image.name)) continue;
          this.db.images.delete(namespace, image.name);
          removed.push(image.name);
        }
      });
    }
    const gc = await this.gc({ measure: true });
    return { images: removed, gc, reclaimed: gc.freed ?? 0 };
  }

  /** Closes what {@link ImageService.open} opened. */
  async close(): Promise<void> {
    await this.#gc.catch(() => {});
    for (const close of this.#owned.reverse()) await Promise.resolve(close()).catch(() => {});
    this.#owned = [];
  }
}
