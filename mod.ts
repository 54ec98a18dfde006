/**
 * tug's public typed API: {@link TugClient}, the client of the tug daemon
 * (over its unix socket), the API's wire types, and the error classes the
 * client throws (the same classes the daemon threw).
 *
 * This module loads no `node:` built-ins and no HTTP framework, so programs
 * (and tug's own CLI) that use it start fast.
 *
 * @example
 * ```ts
 * import { NotFound, TugClient } from "./mod.ts";
 * using client = new TugClient({ address: "/run/tug/tug.sock", namespace: "default" });
 * const { image } = await client.images.pull("docker.io/library/busybox:latest", {
 *   onProgress: (p) => console.log(`${p.unpack.done}/${p.unpack.total} layers`),
 * });
 * try {
 *   await client.images.get("nonexistent");
 * } catch (err) {
 *   if (err instanceof NotFound) console.log("no such image");
 * }
 * for await (const event of client.events.subscribe({ topics: ["/images/*"] })) console.log(event);
 * ```
 *
 * @module
 */
export * from "./errors.ts";
export type { Spec, State, Status } from "./runtime/spec.ts";
export type {
  ContentInfo,
  Descriptor,
  Digest,
  Mount,
  Platform,
  SnapshotInfo,
} from "./images/types.ts";
export { OCI_VERSION, VERSION } from "./version.ts";

export {
  ContentClient,
  EventsClient,
  type EventStream,
  NamespacesClient,
  SnapshotsClient,
  type SnapshotsOptions,
  type SubscribeOptions,
  SystemClient,
  TugClient,
} from "./client/client.ts";
export {
  decodeError,
  type Query,
  type RequestOptions,
  Transport,
  type TugClientOptions,
} from "./client/http.ts";
export { ContainersClient, type LogsOptions, TasksClient } from "./client/containers.ts";
export {
  type ExportOptions,
  ImagesClient,
  type ImportOptions,
  type PullOptions,
  type PushOptions,
} from "./client/images.ts";
export {
  API_PREFIX,
  type BlobProgressInfo,
  type CgroupStats,
  type ContainerEventPayload,
  type ContainerInfo,
  type ContentInfoRecord,
  type CreateContainerRequest,
  type CreateNamespaceRequest,
  type DaemonInfo,
  DEFAULT_ADDRESS,
  DEFAULT_NAMESPACE,
  type DiskUsageInfo,
  type ErrorBody,
  type EventMessage,
  type ExecRequest,
  type ExitStatus,
  type GcResultInfo,
  type ImageEventPayload,
  type ImageInfo,
  type ImageUsageInfo,
  type ImportResultInfo,
  type KillRequest,
  type LogEntry,
  type MountOption,
  NAMESPACE_HEADER,
  type NamespaceEventPayload,
  type NamespaceInfo,
  type PruneRequest,
  type PruneResultInfo,
  type PullMessage,
  type PullProgressInfo,
  type PullRequest,
  type PullResultInfo,
  type PushMessage,
  type PushRequest,
  type PushResultInfo,
  type RegistryCredentials,
  type RestartPolicy,
  type ShimInfo,
  type SnapshotInfoRecord,
  type SnapshotUsageInfo,
  type StdioRequest,
  type SystemDfInfo,
  type TagRequest,
  type TaskEventPayload,
  type TaskInfo,
  type Topic,
  TOPICS,
  type TransferProgressInfo,
  type TugEvent,
  type UsageTotalInfo,
  type VersionInfo,
} from "./client/types.ts";
