/**
 * tug's metadata: a SQLite database (node:sqlite, WAL, versioned schema) of
 * namespaces, images, containers and leases, each namespace's view of the
 * shared content store and of the snapshotters, garbage collection with
 * containerd's semantics, and disk usage.
 *
 * @example
 * ```ts
 * import { collectGarbage, MetadataStore } from "./images/metadata/mod.ts";
 * const db = MetadataStore.open("/var/lib/tug/metadata.db");
 * const lease = db.leases.create("default", { expiresIn: 24 * 3600_000 });
 * const content = db.contentStore("default", localStore, { lease: lease.id });
 * // … pull into `content`, record the image …
 * db.leases.delete("default", lease.id);
 * await collectGarbage(db, { content: localStore, snapshotters: [overlay] });
 * ```
 *
 * @module
 */

export { type MetadataOptions, MetadataStore } from "./db.ts";
export { type Migration, MIGRATIONS, SCHEMA_VERSION } from "./_sql.ts";
export { type Namespace, NamespaceStore } from "./namespaces.ts";
export {
  type Image,
  type ImageInput,
  ImageStore,
  type ImageUpdate,
  validateNameTarget,
} from "./images.ts";
export {
  type Container,
  type ContainerInput,
  type ContainerRuntime,
  ContainerStore,
  type ContainerUpdate,
} from "./containers.ts";
export {
  type Lease,
  type LeaseOptions,
  type LeaseResource,
  type LeaseResourceRef,
  LeaseStore,
} from "./leases.ts";
export { NamespacedContentStore, type NamespacedOptions } from "./content.ts";
export { NamespacedSnapshotter } from "./snapshots.ts";
export { collectGarbage, type GcOptions, type GcResult } from "./gc.ts";
export {
  type DiskUsage,
  diskUsage,
  type DiskUsageOptions,
  type ImageUsage,
  type UsageTotal,
} from "./usage.ts";
export { expiryOf, GC_LABELS, isExpired, type LabelRef, labelRefs } from "./labels.ts";
export {
  isDigest,
  MAX_IDENTIFIER_LENGTH,
  MAX_LABEL_SIZE,
  validateDescriptor,
  validateDigest,
  validateIdentifier,
  validateLabels,
} from "./validate.ts";
