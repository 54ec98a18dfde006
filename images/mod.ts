/**
 * tug's image store: the image service the daemon uses (pull, push, list,
 * get, remove, tag, import, export, unpack, prepareRootfs, usage, prune,
 * gc), and the vocabulary it is built from. The parts live in their own
 * folders: `content/` (content store), `registry/` (registry client),
 * `snapshots/` (snapshotters), `unpack/` (layer application), `metadata/`
 * (namespaces, images, containers, leases, garbage collection) and
 * `archive/` (import and export).
 *
 * @example
 * ```ts
 * import { ImageService } from "./images/mod.ts";
 * const images = await ImageService.open("/var/lib/tug", { registry: { hostsDir: "/etc/tug/certs.d" } });
 * const { image } = await images.pull("docker.io/library/busybox:latest");
 * const mounts = await images.prepareRootfs(image.name, "my-container");
 * await images.close();
 * ```
 *
 * @module
 */

export {
  type ExportOptions,
  ImageService,
  type ImageServiceOptions,
  type ImportOptions,
  type ImportResult,
  LEASE_PURPOSE_LABEL,
  type NamespaceOptions,
  type OciImageConfig,
  type OpenImageServiceOptions,
  type PrepareRootfsOptions,
  type PruneOptions,
  type PruneResult,
  type PullOptions,
  type PullProgress,
  type PullResult,
  type PushOptions,
  type RemovedLease,
  type RemoveOptions,
  type TagOptions,
  type UnpackOptions,
  type UnpackResult,
} from "./service.ts";
export { chainIds } from "./unpack/mod.ts";
export type { ArchiveFormat } from "./archive/mod.ts";
export type {
  Container,
  DiskUsage,
  GcResult,
  Image,
  ImageUsage,
  Lease,
  UsageTotal,
} from "./metadata/mod.ts";
export type { FetchStats } from "./registry/fetch.ts";
export type { TransferProgress } from "./registry/progress.ts";
export type { PushResult } from "./registry/push.ts";
export type { PlatformMatcher } from "./registry/platforms.ts";
export * from "./types.ts";
