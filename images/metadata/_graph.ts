/**
 * Internal to images/metadata: the reference graph garbage collection and
 * disk usage walk. A synchronous snapshot of the records (`loadState`), and
 * a synchronous mark from roots over it (`mark`). Children of indexes and
 * manifests come from the `containerd.io/gc.ref.*` labels and from the blobs
 * themselves; blobs are read asynchronously beforehand into a cache (`fill`),
 * which stays valid because content is addressed by digest.
 *
 * @module
 */

import { NotFound } from "../../errors.ts";
import { type ContentStore, type Descriptor, MEDIA_TYPES } from "../types.ts";
import { decodeLabels, type Sql } from "./_sql.ts";
import { GC_LABELS, isExpired, labelRefs } from "./labels.ts";

/** A node of the graph. */
export type Node =
  | { type: "content"; namespace: string; digest: string; mediaType?: string; flat?: boolean }
  | { type: "snapshot"; namespace: string; snapshotter: string; key: string; flat?: boolean };

/** The key of a node in the marked set. */
export function nodeKey(n: Node): string {
  return n.type === "content"
    ? `c\0${n.namespace}\0${n.digest}`
    : `s\0${n.namespace}\0${n.snapshotter}\0${n.key}`;
}

/** Key of a content record. */
export function contentKey(namespace: string, digest: string): string {
  return `c\0${namespace}\0${digest}`;
}

/** Key of a snapshot record. */
export function snapshotKey(namespace: string, snapshotter: string, key: string): string {
  return `s\0${namespace}\0${snapshotter}\0${key}`;
}

export interface ImageRec {
  namespace: string;
  name: string;
  target: Descriptor;
  labels: Record<string, string>;
}

export interface ContainerRec {
  namespace: string;
  id: string;
  image: string | null;
  snapshotter: string | null;
  snapshotKey: string | null;
  labels: Record<string, string>;
}

export interface LeaseRec {
  namespace: string;
  id: string;
  labels: Record<string, string>;
  resources: Array<{ type: string; snapshotter: string; id: string }>;
}

export interface ContentRec {
  namespace: string;
  digest: string;
  labels: Record<string, string>;
}

export interface SnapshotRec {
  namespace: string;
  snapshotter: string;
  key: string;
  backendKey: string;
  parent: string | null;
  labels: Record<string, string>;
}

export interface IngestRec {
  namespace: string;
  ref: string;
  backendRef: string;
}

/** Every record the graph needs, read in one go. */
export interface State {
  images: ImageRec[];
  containers: ContainerRec[];
  leases: LeaseRec[];
  content: Map<string, ContentRec>;
  snapshots: Map<string, SnapshotRec>;
  ingests: IngestRec[];
}

/** Reads the records (synchronously, so they are consistent with what the caller does next). */
export function loadState(sql: Sql): State {
  const images = sql.all<{ namespace: string; name: string; target: string; labels: string }>(
    "SELECT namespace, name, target, labels FROM images",
  ).map((r) => ({
    ...r,
    target: JSON.parse(r.target) as Descriptor,
    labels: decodeLabels(r.labels),
  }));
  const containers = sql.all<
    {
      namespace: string;
      id: string;
      image: string | null;
      snapshotter: string | null;
      snapshot_key: string | null;
      labels: string;
    }
  >("SELECT namespace, id, image, snapshotter, snapshot_key, labels FROM containers").map((r) => ({
    namespace: r.namespace,
    id: r.id,
    image: r.image,
    snapshotter: r.snapshotter,
    snapshotKey: r.snapshot_key,
    labels: decodeLabels(r.labels),
  }));
  const leases = new Map<string, LeaseRec>();
  for (
    const r of sql.all<{ namespace: string; id: string; labels: string }>(
      "SELECT namespace, id, labels FROM leases",
    )
  ) {
    leases.set(`${r.namespace}\0${r.id}`, { ...r, labels: decodeLabels(r.labels), resources: [] });
  }
  for (
    const r of sql.all<
      { namespace: string; lease: string; type: string; snapshotter: string; id: string }
    >(
      "SELECT namespace, lease, type, snapshotter, id FROM lease_resources",
    )
  ) {
    leases.get(`${r.namespace}\0${r.lease}`)?.resources.push(r);
  }
  const content = new Map<string, ContentRec>();
  for (
    const r of sql.all<{ namespace: string; digest: string; labels: string }>(
      "SELECT namespace, digest, labels FROM content",
    )
  ) {
    content.set(contentKey(r.namespace, r.digest), { ...r, labels: decodeLabels(r.labels) });
  }
  const snapshots = new Map<string, SnapshotRec>();
  for (
    const r of sql.all<
      {
        namespace: string;
        snapshotter: string;
        key: string;
        backend_key: string;
        parent: string | null;
        labels: string;
      }
    >("SELECT namespace, snapshotter, key, backend_key, parent, labels FROM snapshots")
  ) {
    snapshots.set(snapshotKey(r.namespace, r.snapshotter, r.key), {
      namespace: r.namespace,
      snapshotter: r.snapshotter,
      key: r.key,
      backendKey: r.backend_key,
      parent: r.parent,
      labels: decodeLabels(r.labels),
    });
  }
  const ingests = sql.all<{ namespace: string; ref: string; backend_ref: string }>(
    "SELECT namespace, ref, backend_ref FROM ingests",
  ).map((r) => ({ namespace: r.namespace, ref: r.ref, backendRef: r.backend_ref }));
  return { images, containers, leases: [...leases.values()], content, snapshots, ingests };
}

const INDEX_TYPES = new Set<string>([MEDIA_TYPES.ociIndex, MEDIA_TYPES.dockerManifestList]);
const MANIFEST_TYPES = new Set<string>([MEDIA_TYPES.ociManifest, MEDIA_TYPES.dockerManifest]);

/** True when blobs of `mediaType` list children (indexes and manifests). */
export function hasChildren(mediaType: string | undefined): boolean {
  return mediaType !== undefined && (INDEX_TYPES.has(mediaType) || MANIFEST_TYPES.has(mediaType));
}

/** Children of blobs, by digest (null: absent or not parsable, so no children). */
export type ChildrenCache = Map<string, Descriptor[] | null>;

/** The descriptors an index or manifest blob lists, or null when it does not parse as one. */
export function parseChildren(bytes: Uint8Array): Descriptor[] | null {
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return null;
  }
  if (typeof doc !== "object" || doc === null) return null;
  const d = doc as { manifests?: unknown; config?: unknown; layers?: unknown };
  const out: Descriptor[] = [];
  const take = (x: unknown) => {
    if (typeof x === "object" && x !== null && typeof (x as Descriptor).digest === "string") {
      out.push(x as Descriptor);
    }
  };
  if (Array.isArray(d.manifests)) d.manifests.forEach(take);
  if (d.config !== undefined) take(d.config);
  if (Array.isArray(d.layers)) d.layers.forEach(take);
  return out;
}

/** The largest blob read as an index or manifest. */
const MAX_MANIFEST = 8 << 20;

/** Reads the blobs of `missing` into `cache`. */
export async function fill(
  cache: ChildrenCache,
  missing: Iterable<Descriptor>,
  content: ContentStore,
): Promise<void> {
  for (const desc of missing) {
    if (cache.has(desc.digest)) continue;
    try {
      const info = await content.info(desc.digest);
      cache.set(
        desc.digest,
        info.size > MAX_MANIFEST ? null : parseChildren(await content.readBytes(desc.digest)),
      );
    } catch (err) {
      if (!(err instanceof NotFound)) throw err;
      cache.set(desc.digest, null);
    }
  }
}

/** The roots of every namespace: live leases, live images, containers, and gc.root records. */
export function allRoots(
  state: State,
  now: Date,
): { roots: Node[]; leasedIngests: Set<string>; expiredLeases: LeaseRec[] } {
  const roots: Node[] = [];
  const leasedIngests = new Set<string>();
  const expiredLeases: LeaseRec[] = [];
  for (const lease of state.leases) {
    if (isExpired(lease.labels, now)) {
      expiredLeases.push(lease);
      continue;
    }
    const flat = lease.labels[GC_LABELS.flat] !== undefined;
    for (const r of lease.resources) {
      if (r.type === "content") {
        roots.push({ type: "content", namespace: lease.namespace, digest: r.id, flat });
      } else if (r.type === "snapshot") {
        roots.push({
          type: "snapshot",
          namespace: lease.namespace,
          snapshotter: r.snapshotter,
          key: r.id,
          flat,
        });
      } else if (r.type === "ingest") leasedIngests.add(`${lease.namespace}\0${r.id}`);
    }
  }
  const imagesByName = new Map(state.images.map((i) => [`${i.namespace}\0${i.name}`, i]));
  for (const image of state.images) {
    if (!isExpired(image.labels, now)) roots.push(...imageRoots(image));
  }
  for (const c of state.containers) {
    if (c.snapshotter && c.snapshotKey) {
      roots.push({
        type: "snapshot",
        namespace: c.namespace,
        snapshotter: c.snapshotter,
        key: c.snapshotKey,
      });
    }
    roots.push(...refNodes(c.namespace, c.labels));
    const image = c.image === null ? undefined : imagesByName.get(`${c.namespace}\0${c.image}`);
    if (image) roots.push(...imageRoots(image));
  }
  for (const rec of state.content.values()) {
    if (rec.labels[GC_LABELS.root] !== undefined) {
      roots.push({ type: "content", namespace: rec.namespace, digest: rec.digest });
    }
  }
  for (const rec of state.snapshots.values()) {
    if (rec.labels[GC_LABELS.root] !== undefined) {
      roots.push({
        type: "snapshot",
        namespace: rec.namespace,
        snapshotter: rec.snapshotter,
        key: rec.key,
      });
    }
  }
  return { roots, leasedIngests, expiredLeases };
}

/** The nodes an image refers to directly: its target and its labels' references. */
export function imageRoots(image: ImageRec): Node[] {
  return [
    {
      type: "content",
      namespace: image.namespace,
      digest: image.target.digest,
      mediaType: image.target.mediaType,
    },
    ...refNodes(image.namespace, image.labels),
  ];
}

function refNodes(namespace: string, labels: Record<string, string>): Node[] {
  return labelRefs(labels).map((r): Node =>
    r.type === "content"
      ? { type: "content", namespace, digest: r.digest }
      : { type: "snapshot", namespace, snapshotter: r.snapshotter, key: r.key }
  );
}

/** Marks everything reachable from `roots` (synchronously). */
export function mark(
  state: State,
  roots: Node[],
  cache: ChildrenCache,
): { marked: Set<string>; missing: Map<string, Descriptor> } {
  const marked = new Set<string>();
  const expanded = new Set<string>();
  const missing = new Map<string, Descriptor>();
  const stack: Node[] = [...roots];
  while (stack.length > 0) {
    const n = stack.pop()!;
    const key = nodeKey(n);
    marked.add(key);
    // A content node reached with a media type may have children even when it was marked before without one.
    const expandKey = n.type === "content" && hasChildren(n.mediaType) ? `${key}\0m` : key;
    if (n.flat || expanded.has(expandKey)) continue;
    expanded.add(expandKey);
    if (n.type === "content") {
      const rec = state.content.get(key);
      if (rec) stack.push(...refNodes(n.namespace, rec.labels));
      if (hasChildren(n.mediaType)) {
        const children = cache.get(n.digest);
        if (children === undefined) {
          missing.set(n.digest, { mediaType: n.mediaType!, digest: n.digest, size: 0 });
        } else if (children !== null) {
          for (const c of children) {
            stack.push({
              type: "content",
              namespace: n.namespace,
              digest: c.digest,
              mediaType: c.mediaType,
            });
          }
        }
      }
    } else {
      const rec = state.snapshots.get(key);
      if (rec) {
        if (rec.parent !== null) {
          stack.push({
            type: "snapshot",
            namespace: n.namespace,
            snapshotter: n.snapshotter,
            key: rec.parent,
          });
        }
        stack.push(...refNodes(n.namespace, rec.labels));
      }
    }
  }
  return { marked, missing };
}

/**
 * Marks from `roots`, reading the blobs of indexes and manifests into
 * `cache` as they are found, until nothing is missing. The last mark ran
 * over `loadState(sql)` taken synchronously with its result, so the caller
 * may act on the state in the same synchronous step via `then`.
 */
export async function markFully<T>(
  sql: Sql,
  args: { content: ContentStore; cache: ChildrenCache; roots: (state: State) => Node[] },
  then: (state: State, marked: Set<string>) => T,
): Promise<T> {
  for (;;) {
    const state = loadState(sql);
    const { marked, missing } = mark(state, args.roots(state), args.cache);
    if (missing.size === 0) return then(state, marked);
    await fill(args.cache, missing.values(), args.content);
  }
}
