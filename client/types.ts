/**
 * The types of tug's HTTP API v1 as they travel: request and response bodies,
 * stream messages and event topics. The daemon produces them and
 * {@link TugClient} returns them. Times are RFC 3339 strings.
 *
 * @module
 */

import type { Descriptor, Platform } from "../images/types.ts";

export type { Descriptor, Platform };

/** The API version prefix every route is under. */
export const API_PREFIX = "/v1";

/** The header naming the namespace of a request (default `default`). */
export const NAMESPACE_HEADER = "Tug-Namespace";

/** The namespace used when none is named. */
export const DEFAULT_NAMESPACE = "default";

/** The daemon's API socket when none is configured. */
export const DEFAULT_ADDRESS = "/run/tug/tug.sock";

/** The body of every error response, and the last line of a stream that failed. */
export interface ErrorBody {
  error: { code: string; message: string };
}

/** `GET /v1/version`. */
export interface VersionInfo {
  /** tug's version. */
  version: string;
  /** The OCI runtime-spec version tug implements. */
  ociVersion: string;
  /** The API version (`v1`). */
  api: string;
  /** The Deno runtime the daemon runs on. */
  deno: string;
}

/** One running shim, as `info` reports it. */
export interface ShimInfo {
  /** The group it serves: a namespace, or a value of the shim group label. */
  group: string;
  pid: number;
  /** Its socket. */
  address: string;
  /** Containers it supervises. */
  containers: number;
}

/** `GET /v1/info`. */
export interface DaemonInfo {
  version: string;
  /** Persistent data (metadata.db, content/, snapshots/). */
  root: string;
  /** Runtime state (sockets, shims). */
  state: string;
  /** The API socket. */
  address: string;
  pid: number;
  /** When the daemon started. */
  startedAt: string;
  snapshotters: string[];
  defaultSnapshotter: string;
  /** The host's cgroup layout. */
  cgroups: { mode: "v1" | "v2" | "hybrid" | "unknown"; root: string; controllers: string[] };
  /** The OCI runtime's features document (runtime-spec features.md). */
  runtime: Record<string, unknown>;
  /** Running shims (empty until the containers service reports them). */
  shims: ShimInfo[];
  kernel: string;
  arch: string;
}

/** A namespace record. */
export interface NamespaceInfo {
  name: string;
  labels: Record<string, string>;
  createdAt: string;
  updatedAt: string;
}

/** `POST /v1/namespaces`. */
export interface CreateNamespaceRequest {
  name: string;
  labels?: Record<string, string>;
}

/** Disk usage of one image. */
export interface ImageUsageInfo {
  /** Bytes of the image's blobs in the content store. */
  content: number;
  /** Bytes of its unpacked snapshots. */
  snapshots: number;
  /** `content + snapshots`. */
  size: number;
  /** Bytes of `size` that another image uses too. */
  shared: number;
  /** What removing only this image could free. */
  unique: number;
}

/** An image record, with what `images list` shows. */
export interface ImageInfo {
  /** The normalized reference, e.g. `docker.io/library/busybox:latest`. */
  name: string;
  /** The index or manifest it points to. */
  target: Descriptor;
  labels: Record<string, string>;
  createdAt: string;
  updatedAt: string;
  /** Platforms the image has content for, as `os/arch[/variant]`. */
  platforms: string[];
  usage: ImageUsageInfo;
}

/** Credentials for a registry. */
export interface RegistryCredentials {
  username: string;
  password: string;
}

/** `POST /v1/images/pull`. */
export interface PullRequest {
  /** The reference, normalized as Docker does (`busybox` is `docker.io/library/busybox:latest`). */
  ref: string;
  /** `os/arch[/variant]` (default: the daemon's). */
  platform?: string;
  /** Fetch every platform of an index (the daemon's own is unpacked). */
  allPlatforms?: boolean;
  /** Use plain HTTP for the registry's default server. */
  plainHttp?: boolean;
  /** Skip TLS verification for the registry's default server. */
  skipVerify?: boolean;
  credentials?: RegistryCredentials;
  /** Unpack into a snapshot (default true). */
  unpack?: boolean;
  snapshotter?: string;
}

/** How one blob's transfer stands. */
export interface BlobProgressInfo {
  digest: string;
  mediaType: string;
  done: number;
  total: number;
  status: "waiting" | "downloading" | "resuming" | "uploading" | "exists" | "done" | "failed";
}

/** Progress of a transfer (pull or push). */
export interface TransferProgressInfo {
  blobs: BlobProgressInfo[];
  done: number;
  total: number;
  bytesPerSecond: number;
  elapsedMs: number;
  finished: boolean;
}

/** One progress message of a pull. */
export interface PullProgressInfo {
  transfer?: TransferProgressInfo;
  /** Layers unpacked so far, of the layers of the image. */
  unpack: { done: number; total: number };
}

/** What a pull did. */
export interface PullResultInfo {
  image: ImageInfo;
  unpacked?: { snapshotter: string; chainId?: string; unpackedLayers: number };
  /** Blobs downloaded, resumed, already present, and bytes received. */
  stats: { fetched: number; resumed: number; existing: number; bytes: number };
}

/** A line of a pull's NDJSON stream: progress, then the result or an error. */
export type PullMessage = { progress: PullProgressInfo } | { result: PullResultInfo } | ErrorBody;

/** `POST /v1/images/{name}/push`. */
export interface PushRequest {
  /** Where to push (default: the image's own name). */
  remote?: string;
  plainHttp?: boolean;
  skipVerify?: boolean;
  credentials?: RegistryCredentials;
}

/** What a push did. */
export interface PushResultInfo {
  name: string;
  target: Descriptor;
  uploaded: number;
  existing: number;
  mounted: number;
  manifests: number;
}

/** A line of a push's NDJSON stream. */
export type PushMessage =
  | { progress: TransferProgressInfo }
  | { result: PushResultInfo }
  | ErrorBody;

/** `POST /v1/images/{name}/tag`. */
export interface TagRequest {
  /** The new name. */
  target: string;
  /** Repoint `target` when it exists. */
  force?: boolean;
}

/** What an import did. */
export interface ImportResultInfo {
  /** `oci` or `docker`. */
  format: string;
  images: ImageInfo[];
}

/** `POST /v1/images/prune`. */
export interface PruneRequest {
  /** Also remove every image no container uses. */
  all?: boolean;
}

/** What garbage collection removed. */
export interface GcResultInfo {
  /** Blobs deleted from the content store. */
  blobs: number;
  /** Snapshots removed from their snapshotters. */
  snapshots: number;
  /** Ingests aborted. */
  ingests: number;
  /** Expired leases removed. */
  leases: number;
}

/** What a prune did. */
export interface PruneResultInfo {
  images: string[];
  gc: GcResultInfo;
  /** Bytes deleted from the disk by the collection (a blob another namespace records stays). */
  reclaimed: number;
}

/** A number of objects and their bytes. */
export interface UsageTotalInfo {
  count: number;
  size: number;
}

/** `GET /v1/images/usage`: disk usage of a namespace. */
export interface DiskUsageInfo {
  images: Array<ImageUsageInfo & { name: string }>;
  content: UsageTotalInfo;
  snapshots: UsageTotalInfo;
  /** Partial downloads (bytes written so far), resumable by the next pull. */
  ingests: UsageTotalInfo;
  /** content + snapshots + ingests. */
  size: number;
  reclaimable: number;
}

/** A blob the namespace records. */
export interface ContentInfoRecord {
  digest: string;
  size: number;
  labels: Record<string, string>;
  createdAt: string;
  updatedAt: string;
}

/** A snapshot the namespace records. */
export interface SnapshotInfoRecord {
  /** Key (active, view) or name (committed). */
  name: string;
  parent?: string;
  kind: "active" | "view" | "committed";
  labels: Record<string, string>;
  createdAt: string;
  updatedAt: string;
}

/** Disk usage of one snapshot. */
export interface SnapshotUsageInfo {
  name: string;
  size: number;
  inodes: number;
}

/** `GET /v1/system/df`: disk usage of a namespace, by kind. */
export interface SystemDfInfo {
  images: { count: number; size: number; reclaimable: number; active: number };
  containers: { count: number };
  content: UsageTotalInfo;
  snapshots: UsageTotalInfo;
  /** Partial downloads (bytes written so far), resumable by the next pull. */
  ingests: UsageTotalInfo;
  /** Bytes garbage collection would free now. */
  reclaimable: number;
  size: number;
}

// ---------------------------------------------------------------------------
// Events

/** An event as published on the daemon's event bus and streamed by `GET /v1/events`. */
export interface TugEvent {
  /** When it was published. */
  timestamp: string;
  namespace: string;
  /** e.g. `/images/create`. */
  topic: string;
  payload: Record<string, unknown>;
}

/**
 * The topics tug publishes (containerd's names). Payloads: images
 * `{ name, target? }`; namespaces `{ name }`; containers `{ id, image? }`;
 * tasks `{ id, execId?, pid? }` where `id` is the container's, plus
 * `exitCode` and `exitedAt` (and `oomKilled`) on `/tasks/exit`, `count` on
 * `/tasks/restart`.
 */
export const TOPICS = {
  namespaceCreate: "/namespaces/create",
  namespaceUpdate: "/namespaces/update",
  namespaceDelete: "/namespaces/delete",
  imageCreate: "/images/create",
  imageUpdate: "/images/update",
  imageDelete: "/images/delete",
  containerCreate: "/containers/create",
  containerUpdate: "/containers/update",
  containerDelete: "/containers/delete",
  taskCreate: "/tasks/create",
  taskStart: "/tasks/start",
  taskExit: "/tasks/exit",
  taskOom: "/tasks/oom",
  taskDelete: "/tasks/delete",
  taskPaused: "/tasks/paused",
  taskResumed: "/tasks/resumed",
  taskExecAdded: "/tasks/exec-added",
  taskExecStarted: "/tasks/exec-started",
  taskRestart: "/tasks/restart",
} as const;

/** One of {@link TOPICS}. */
export type Topic = (typeof TOPICS)[keyof typeof TOPICS];

/** Payload of `/images/*` events. */
export interface ImageEventPayload {
  name: string;
  /** The target's digest (absent on delete). */
  target?: string;
}

/** Payload of `/namespaces/*` events. */
export interface NamespaceEventPayload {
  name: string;
}

/** Payload of `/containers/*` events. */
export interface ContainerEventPayload {
  id: string;
  image?: string;
}

/** Payload of `/tasks/*` events. */
export interface TaskEventPayload {
  /** The container's id. */
  id: string;
  /** The exec id, for an exec's events. */
  execId?: string;
  pid?: number;
  /** `/tasks/exit`: the exit code (128 + signal when killed). */
  exitCode?: number;
  /** `/tasks/exit`: when it exited. */
  exitedAt?: string;
  /** `/tasks/exit`: the OOM killer ended it. */
  oomKilled?: boolean;
  /** `/tasks/restart`: restarts so far. */
  count?: number;
}

/** A line of the events stream: an event, or the error that ended the stream. */
export type EventMessage = TugEvent | ErrorBody;

export type {
  ContainerInfo,
  CreateContainerRequest,
  ExecRequest,
  RestartPolicy,
  StdioRequest,
  TaskInfo,
} from "../daemon/containers/service.ts";
export type { MountOption } from "../daemon/containers/spec.ts";
export type { ExitStatus } from "../shim/service.ts";
export type { LogEntry } from "../shim/logs.ts";
export type { CgroupStats } from "../runtime/cgroups/types.ts";

/** `POST /v1/tasks/{id}/kill`. */
export interface KillRequest {
  /** A name (`TERM`, `SIGKILL`) or number; default TERM. */
  signal?: string | number;
  /** Every process of the container, not only its init. */
  all?: boolean;
  /** Signal this exec instead of the init. */
  execId?: string;
}
