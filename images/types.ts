/**
 * The vocabulary of tug's image store, shared by every module under images/
 * (and later by the daemon): OCI descriptors and digests, the content store's
 * role interfaces, and the snapshotter interface. Shaped after containerd's:
 * small interfaces, data instead of side effects; a snapshotter returns Mount
 * records and never mounts anything itself.
 *
 * @module
 */

/** An OCI digest, e.g. `sha256:4f3a…`. */
export type Digest = string;

/** An OCI content descriptor. */
export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  urls?: string[];
  annotations?: Record<string, string>;
  platform?: Platform;
  artifactType?: string;
}

/** An OCI platform. */
export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
  "os.version"?: string;
  "os.features"?: string[];
}

/** A mount described as data: the runtime performs it, nobody else. */
export interface Mount {
  /** Filesystem type, e.g. `overlay` or `bind`. */
  type: string;
  source: string;
  /** Mount options, e.g. `lowerdir=…`, `rbind`, `ro`. */
  options: string[];
}

// ---------------------------------------------------------------------------
// Content store: role interfaces (callers depend on the one they need).

/** Facts about a committed blob. */
export interface ContentInfo {
  digest: Digest;
  size: number;
  createdAt: Date;
  updatedAt: Date;
  labels: Record<string, string>;
}

/** Reads committed blobs by digest. */
export interface ContentProvider {
  /** Info of a committed blob; throws NotFound. */
  info(digest: Digest): Promise<ContentInfo>;
  /** A stream of the blob's bytes from `offset`; throws NotFound. */
  read(digest: Digest, options?: { offset?: number }): Promise<ReadableStream<Uint8Array>>;
  /** The whole blob (for small blobs such as manifests and configs); throws NotFound. */
  readBytes(digest: Digest): Promise<Uint8Array>;
}

/** Status of an unfinished write (an ingest). */
export interface IngestStatus {
  ref: string;
  /** Bytes already written: a resumed write continues from here. */
  offset: number;
  total?: number;
  expected?: Digest;
  startedAt: Date;
  updatedAt: Date;
}

/** An open ingest. Nothing is visible in the store until `commit` succeeds. */
export interface ContentWriter {
  readonly ref: string;
  /** Bytes written so far (including what an earlier, interrupted write left). */
  readonly offset: number;
  write(chunk: Uint8Array): Promise<void>;
  /** Verifies size and digest, fsyncs, renames into place; throws InvalidArgument on a mismatch and keeps nothing. */
  commit(
    expectedSize: number,
    expected: Digest,
    options?: { labels?: Record<string, string> },
  ): Promise<void>;
  /** Closes without committing; the ingest stays resumable. */
  close(): Promise<void>;
}

/** Starts, resumes and lists writes. */
export interface ContentIngester {
  /** Opens (or resumes) the ingest `ref`; throws AlreadyExists when `expected` is committed already. */
  writer(ref: string, options?: { expected?: Digest; total?: number }): Promise<ContentWriter>;
  listIngests(): Promise<IngestStatus[]>;
  abort(ref: string): Promise<void>;
}

/** Lists, labels and deletes committed blobs. */
export interface ContentManager {
  list(): AsyncIterable<ContentInfo>;
  update(digest: Digest, labels: Record<string, string>): Promise<ContentInfo>;
  delete(digest: Digest): Promise<void>;
}

/** The whole content store. */
export interface ContentStore extends ContentProvider, ContentIngester, ContentManager {}

// ---------------------------------------------------------------------------
// Snapshots.

/** The kind of a snapshot. */
export type SnapshotKind = "active" | "view" | "committed";

/** Facts about a snapshot. */
export interface SnapshotInfo {
  /** The key (active/view) or name (committed). */
  name: string;
  parent?: string;
  kind: SnapshotKind;
  labels: Record<string, string>;
  createdAt: Date;
  updatedAt: Date;
}

/** Disk usage of a snapshot (its own layer only, not its parents). */
export interface SnapshotUsage {
  size: number;
  inodes: number;
}

/**
 * The ref prefix of an import's ingests. Each is named afresh
 * (`import-<uuid>`), so nothing can resume one: garbage collection aborts
 * them as soon as no lease holds them, while a pull's ingest (named by its
 * digest) is kept for the grace period, to resume.
 */
export const IMPORT_INGEST_PREFIX = "import-";

/** True for a backing ingest ref (`namespace/ref`) that no writer can ever resume. */
export function oneShotIngest(backendRef: string): boolean {
  return backendRef.slice(backendRef.indexOf("/") + 1).startsWith(IMPORT_INGEST_PREFIX);
}

/**
 * A snapshotter (containerd's model): `prepare` makes a writable active
 * snapshot on top of a committed parent, `view` a read-only one, `commit`
 * turns an active snapshot into a committed one with a name (a chain ID for
 * image layers). `prepare`/`view`/`mounts` return Mount records; they never mount.
 */
export interface Snapshotter {
  readonly name: string;
  stat(key: string): Promise<SnapshotInfo>;
  update(info: Pick<SnapshotInfo, "name" | "labels">): Promise<SnapshotInfo>;
  usage(key: string): Promise<SnapshotUsage>;
  mounts(key: string): Promise<Mount[]>;
  prepare(
    key: string,
    parent?: string,
    options?: { labels?: Record<string, string> },
  ): Promise<Mount[]>;
  view(
    key: string,
    parent?: string,
    options?: { labels?: Record<string, string> },
  ): Promise<Mount[]>;
  commit(name: string, key: string, options?: { labels?: Record<string, string> }): Promise<void>;
  remove(key: string): Promise<void>;
  walk(fn: (info: SnapshotInfo) => void | Promise<void>): Promise<void>;
  close(): Promise<void>;
}

// Media types tug understands.
export const MEDIA_TYPES = {
  ociIndex: "application/vnd.oci.image.index.v1+json",
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  ociConfig: "application/vnd.oci.image.config.v1+json",
  ociLayer: "application/vnd.oci.image.layer.v1.tar",
  ociLayerGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  ociLayerZstd: "application/vnd.oci.image.layer.v1.tar+zstd",
  ociLayerNondistributableGzip: "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
  dockerManifestList: "application/vnd.docker.distribution.manifest.list.v2+json",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerConfig: "application/vnd.docker.container.image.v1+json",
  dockerLayerGzip: "application/vnd.docker.image.rootfs.diff.tar.gzip",
  dockerForeignLayerGzip: "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
} as const;
