/**
 * Garbage collection, with containerd's semantics: mark from the roots (live
 * leases and what they hold, images and what their labels refer to,
 * containers with their snapshots and images, records labelled
 * `containerd.io/gc.root`), through index → manifests → config and layers
 * (the `containerd.io/gc.ref.content.*` labels set at pull time, and the
 * blobs themselves) and snapshot chains (parents, and the
 * `containerd.io/gc.ref.snapshot.<snapshotter>` labels); then sweep:
 * unmarked records go, expired leases go, blobs no namespace records are
 * deleted from the content store, snapshots no namespace records are removed
 * from their snapshotter (children before parents), stale ingests no lease
 * holds are aborted (an import's at once: nothing can resume it).
 *
 * @module
 */

import { NotFound } from "../../errors.ts";
import {
  type ContentStore,
  type Digest,
  type IngestStatus,
  oneShotIngest,
  type SnapshotInfo,
  type Snapshotter,
} from "../types.ts";
import { allRoots, type ChildrenCache, contentKey, markFully, snapshotKey } from "./_graph.ts";
import type { MetadataStore } from "./db.ts";

/** Options for {@link collectGarbage}. */
export interface GcOptions {
  /** The backing content store (the one the namespaced views wrap). */
  content: ContentStore;
  /** The backing snapshotters (the ones the namespaced views wrap). */
  snapshotters?: Snapshotter[];
  /** Ingests written to within this many milliseconds are kept even when no lease holds them (default 24 h). */
  ingestGracePeriod?: number;
  /** What time it is, for lease expiry (default: now). */
  now?: Date;
  /** Measure what is deleted from the disk, into {@link GcResult.freed} (default false: it costs a walk of each snapshot removed). */
  measure?: boolean;
}

/** What a collection removed. */
export interface GcResult {
  /** Content records removed, per namespace. */
  content: Array<{ namespace: string; digest: Digest }>;
  /** Blobs deleted from the content store (no namespace recorded them any more). */
  blobs: Digest[];
  /** Snapshot records removed, per namespace. */
  snapshots: Array<{ namespace: string; snapshotter: string; key: string }>;
  /** Snapshots removed from their snapshotter, by backing key. */
  backendSnapshots: Array<{ snapshotter: string; key: string }>;
  /** Ingests aborted, by backing ref. */
  ingests: string[];
  /** Expired leases removed. */
  leases: Array<{ namespace: string; id: string }>;
  /** With `measure`: the bytes deleted from the disk (blobs, snapshots, ingests). */
  freed?: number;
}

/** How long an ingest no lease holds is kept after its last write, by default: a partial download stays resumable. */
export const INGEST_GRACE_PERIOD = 24 * 60 * 60 * 1000;

/**
 * True when ingest `s`, which no lease holds, may be aborted at `now`: an
 * import's at once (nothing can resume it), a pull's once its last write is
 * `grace` milliseconds old.
 */
export function ingestAbandoned(s: IngestStatus, now: Date, grace: number): boolean {
  return oneShotIngest(s.ref) || now.getTime() - s.updatedAt.getTime() >= grace;
}

/**
 * Collects garbage across every namespace of `db` (see the module
 * documentation). Safe to run while pulls and other writes go on: a write
 * through a namespaced view holds a lock that the sweep of the backing
 * stores waits for, and a pull holds a lease.
 */
export async function collectGarbage(db: MetadataStore, options: GcOptions): Promise<GcResult> {
  const now = options.now ?? new Date();
  const grace = options.ingestGracePeriod ?? INGEST_GRACE_PERIOD;
  const cache: ChildrenCache = new Map();
  const ingestStatus = new Map<string, IngestStatus>();
  for (const s of await options.content.listIngests()) ingestStatus.set(s.ref, s);
  const stale = (s: IngestStatus | undefined) => s === undefined || ingestAbandoned(s, now, grace);
  let leasedIngests = new Set<string>();

  const result: GcResult = {
    content: [],
    blobs: [],
    snapshots: [],
    backendSnapshots: [],
    ingests: [],
    leases: [],
  };
  const toAbort = new Set<string>();
  let freed = 0;
  const measured = async (size: () => Promise<number>) => {
    if (!options.measure) return;
    try {
      freed += await size();
    } catch {
      // gone meanwhile: nothing to count
    }
  };

  // Mark, then remove the unmarked records, in one synchronous step over one state.
  await markFully(db.sql, {
    content: options.content,
    cache,
    roots: (state) => {
      const r = allRoots(state, now);
      leasedIngests = r.leasedIngests;
      return r.roots;
    },
  }, (state, marked) => {
    db.transaction(() => {
      for (const lease of allRoots(state, now).expiredLeases) {
        db.sql.run("DELETE FROM leases WHERE namespace = ? AND id = ?", lease.namespace, lease.id);
        result.leases.push({ namespace: lease.namespace, id: lease.id });
      }
      for (const rec of state.content.values()) {
        if (marked.has(contentKey(rec.namespace, rec.digest))) continue;
        db.sql.run(
          "DELETE FROM content WHERE namespace = ? AND digest = ?",
          rec.namespace,
          rec.digest,
        );
        result.content.push({ namespace: rec.namespace, digest: rec.digest });
      }
      for (const rec of state.snapshots.values()) {
        if (marked.has(snapshotKey(rec.namespace, rec.snapshotter, rec.key))) continue;
        db.sql.run(
          "DELETE FROM snapshots WHERE namespace = ? AND snapshotter = ? AND key = ?",
          rec.namespace,
          rec.snapshotter,
          rec.key,
        );
        result.snapshots.push({
          namespace: rec.namespace,
          snapshotter: rec.snapshotter,
          key: rec.key,
        });
      }
      for (const ing of state.ingests) {
        const status = ingestStatus.get(ing.backendRef);
        if (leasedIngests.has(`${ing.namespace}\0${ing.ref}`)) continue;
        if (status !== undefined && !stale(status)) continue;
        db.sql.run("DELETE FROM ingests WHERE namespace = ? AND ref = ?", ing.namespace, ing.ref);
        if (status !== undefined) toAbort.add(ing.backendRef);
      }
    });
  });

  // Sweep the backing stores: nothing writes to them meanwhile.
  await db.lock.exclusive(async () => {
    const recordedBlobs = new Set(
      db.sql.all<{ digest: string }>("SELECT DISTINCT digest FROM content").map((r) => r.digest),
    );
    const recordedIngests = new Set(
      db.sql.all<{ backend_ref: string }>("SELECT backend_ref FROM ingests").map((r) =>
        r.backend_ref
      ),
    );
    const blobs: Digest[] = [];
    for await (const info of options.content.list()) {
      if (!recordedBlobs.has(info.digest)) blobs.push(info.digest);
    }
    for (const digest of blobs) {
      try {
        const size = options.measure ? (await options.content.info(digest)).size : 0;
        await options.content.delete(digest);
        freed += size;
        result.blobs.push(digest);
      } catch (err) {
        if (!(err instanceof NotFound)) throw err;
      }
    }
    for (const status of ingestStatus.values()) {
      if (!recordedIngests.has(status.ref) && stale(status)) toAbort.add(status.ref);
    }
    for (const ref of toAbort) {
      try {
        const size = ingestStatus.get(ref)?.offset ?? 0;
        await options.content.abort(ref);
        freed += size;
        result.ingests.push(ref);
      } catch (err) {
        if (!(err instanceof NotFound)) throw err;
      }
    }
    for (const sn of options.snapshotters ?? []) {
      const recorded = new Set(
        db.sql.all<{ backend_key: string }>(
          "SELECT backend_key FROM snapshots WHERE snapshotter = ?",
          sn.name,
        )
          .map((r) => r.backend_key),
      );
      const measure = options.measure
        ? (key: string) => measured(async () => (await sn.usage(key)).size)
        : undefined;
      for (const key of await removeUnrecorded(sn, recorded, measure)) {
        result.backendSnapshots.push({ snapshotter: sn.name, key });
      }
    }
  });
  if (options.measure) result.freed = freed;
  return result;
}

/** Removes the snapshots of `sn` whose keys are not in `recorded`, children before parents. */
async function removeUnrecorded(
  sn: Snapshotter,
  recorded: Set<string>,
  measure?: (key: string) => Promise<void>,
): Promise<string[]> {
  const all: SnapshotInfo[] = [];
  await sn.walk((info) => {
    all.push(info);
  });
  const children = new Map<string, number>();
  for (const info of all) {
    if (info.parent !== undefined) children.set(info.parent, (children.get(info.parent) ?? 0) + 1);
  }
  const doomed = new Map(all.filter((i) => !recorded.has(i.name)).map((i) => [i.name, i]));
  const removed: string[] = [];
  let progress = true;
  while (doomed.size > 0 && progress) {
    progress = false;
    for (const [name, info] of doomed) {
      if ((children.get(name) ?? 0) > 0) continue;
      try {
        await measure?.(name);
        await sn.remove(name);
      } catch (err) {
        if (!(err instanceof NotFound)) throw err;
      }
      removed.push(name);
      doomed.delete(name);
      if (info.parent !== undefined) {
        children.set(info.parent, (children.get(info.parent) ?? 1) - 1);
      }
      progress = true;
    }
  }
  return removed;
}
