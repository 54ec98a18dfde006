/**
 * tug's OCI registry client: references, platforms, hosts configuration
 * (containerd's hosts.toml), authentication, resolving, fetching into a
 * content store (parallel, resumable, streamed to an unpacker), layer
 * decompression, progress, and push.
 *
 * ```ts
 * const client = new RegistryClient({ plainHttp: true });
 * const image = await fetchImage(client, "127.0.0.1:5000/busybox", {
 *   store,
 *   onLayer: (layer, stream) => unpacker.add(layer, decompressLayer(layer.mediaType, stream)),
 *   onProgress: (p) => bar.update(p.done, p.total),
 * });
 * ```
 *
 * @module
 */
export {
  type Challenge,
  type Credentials,
  type CredentialsFn,
  mergeScopes,
  parseChallenges,
  repositoryScope,
} from "./auth.ts";
export {
  type BlobResponse,
  isIndexType,
  isManifestType,
  MANIFEST_ACCEPT,
  manifestMediaType,
  MAX_MANIFEST_SIZE,
  RegistryClient,
  type RegistryClientOptions,
  type Resolved,
  type SignalOptions,
  verifyBytes,
} from "./client.ts";
export {
  type Compression,
  compressionOf,
  decompress,
  decompressLayer,
  isLayerType,
} from "./decompress.ts";
export {
  fetchBlob,
  type FetchBlobOptions,
  type FetchedImage,
  type FetchedManifest,
  fetchImage,
  type FetchImageOptions,
  type FetchOutcome,
  type FetchStats,
  ingestRef,
  type LayerHandler,
  selectManifests,
} from "./fetch.ts";
export {
  filesStamp,
  type HostCapability,
  hostDirectories,
  type HostsOptions,
  hostsWith,
  type HostTls,
  isLocalhost,
  type LoadedHosts,
  loadRegistryHosts,
  parseHostsToml,
  RECENT_MS,
  type RegistryHost,
  registryHosts,
} from "./hosts.ts";
export {
  ALL_PLATFORMS,
  defaultPlatform,
  formatPlatform,
  normalizePlatform,
  parsePlatform,
  type PlatformMatcher,
  platformMatcher,
} from "./platforms.ts";
export {
  type BlobProgress,
  type ProgressFn,
  ProgressTracker,
  type TransferProgress,
  type TransferStatus,
} from "./progress.ts";
export { pushImage, type PushImageOptions, type PushResult } from "./push.ts";
export {
  DEFAULT_DOMAIN,
  DEFAULT_TAG,
  familiarReference,
  formatReference,
  parseReference,
  type Reference,
  referenceName,
  referenceObject,
} from "./reference.ts";
