/**
 * Disk usage of a namespace: per image (its blobs and its unpacked snapshots,
 * each counted once), and in total, with the bytes images share counted once
 * and the bytes garbage collection would free.
 *
 * @module
 */

import { NotFound } from "../../errors.ts";
import type { ContentStore, Snapshotter } from "../types.ts";
import { allRoots, type ChildrenCache, imageRoots, mark, markFully, type State } from "./_graph.ts";
import type { MetadataStore } from "./db.ts";
import { INGEST_GRACE_PERIOD, ingestAbandoned } from "./gc.ts";

/** Disk usage of one image. */
export interface ImageUsage {
  name: string;
  /** Bytes of the image's blobs present in the content store. */
  content: number;
  /** Bytes of the image's unpacked snapshots (every snapshotter). */
  snapshots: number;
  /** `content + snapshots`. */
  size: number;
  /** Bytes of `size` that another image of the namespace uses too. */
  shared: number;
  /** `size - shared`: what removing only this image could free. */
  unique: number;
}

/** A number of objects and their bytes. */
export interface UsageTotal {
  count: number;
  size: number;
}

/** Disk usage of a namespace. */
export interface DiskUsage {
  images: ImageUsage[];
  /** The bytes all the images use together: each blob and snapshot once, however many images share it. */
  imagesSize: number;
  /**
   * The bytes of `imagesSize` that no image a container of the namespace was
   * made from uses: what removing every such image would free (as Docker's
   * reclaimable; blobs other namespaces also record excluded).
   */
  unusedImagesSize: number;
  /** Every blob the namespace records, each once. */
  content: UsageTotal;
  /** Every snapshot the namespace records, each once. */
  snapshots: UsageTotal;
  /**
   * Partial downloads the namespace records (the bytes written so far): a
   * pull's layer still downloading, or one a cancelled pull left to resume.
   */
  ingests: UsageTotal;
  /** `content.size + snapshots.size + ingests.size`. */
  size: number;
  /**
   * Bytes garbage collection would free in this namespace now (blobs other
   * namespaces also record excluded; ingests only once no lease holds them
   * and they were not written to for the grace period).
   */
  reclaimable: number;
}

/** Options for {@link diskUsage}. */
export interface DiskUsageOptions {
  /** The backing content store. */
  content: ContentStore;
  /** The backing snapshotters. */
  snapshotters?: Snapshotter[];
  /** As garbage collection's: ingests written to within this many milliseconds are kept (default 24 h). */
  ingestGracePeriod?: number;
  now?: Date;
}

/** Measures the disk usage of `namespace` (see the module documentation). */
export async function diskUsage(
  db: MetadataStore,
  namespace: string,
  options: DiskUsageOptions,
): Promise<DiskUsage> {
  const now = options.now ?? new Date();
  const cache: ChildrenCache = new Map();
  // Mark from every root so the cache holds every manifest any image needs.
  let leasedIngests = new Set<string>();
  const { state, live } = await markFully(db.sql, {
    content: options.content,
    cache,
    roots: (s) => {
      const r = allRoots(s, now);
      leasedIngests = r.leasedIngests;
      return r.roots;
    },
  }, (state, marked) => ({ state, live: marked }));

  const sizes = new Map<string, number>();
  const snapshotters = new Map((options.snapshotters ?? []).map((s) => [s.name, s]));
  for (const [key, rec] of state.content) {
    if (rec.namespace !== namespace) continue;
    try {
      sizes.set(key, (await options.content.info(rec.digest)).size);
    } catch (err) {
      if (!(err instanceof NotFound)) throw err;
    }
  }
  for (const [key, rec] of state.snapshots) {
    if (rec.namespace !== namespace) continue;
    const sn = snapshotters.get(rec.snapshotter);
    if (!sn) continue;
    try {
      sizes.set(key, (await sn.usage(rec.backendKey)).size);
    } catch (err) {
      if (!(err instanceof NotFound)) throw err;
    }
  }

  const perImage = imagesOf(state, namespace).map((image) => ({
    name: image.name,
    keys: mark(state, imageRoots(image), cache).marked,
  }));
  const usedNames = new Set(
    state.containers.filter((c) => c.namespace === namespace && c.image !== null).map((c) =>
      c.image!
    ),
  );
  const allKeys = new Set<string>();
  const usedKeys = new Set<string>();
  for (const { name, keys } of perImage) {
    for (const k of keys) {
      allKeys.add(k);
      if (usedNames.has(name)) usedKeys.add(k);
    }
  }
  const users = new Map<string, number>();
  for (const { keys } of perImage) for (const k of keys) users.set(k, (users.get(k) ?? 0) + 1);

  const images: ImageUsage[] = perImage.map(({ name, keys }) => {
    let content = 0, snapshots = 0, shared = 0;
    for (const k of keys) {
      const size = sizes.get(k) ?? 0;
      if (k.startsWith("c\0")) content += size;
      else snapshots += size;
      if ((users.get(k) ?? 0) > 1) shared += size;
    }
    return {
      name,
      content,
      snapshots,
      size: content + snapshots,
      shared,
      unique: content + snapshots - shared,
    };
  });

  const total = (prefix: string): UsageTotal => {
    let count = 0, size = 0;
    for (const [k, s] of sizes) {
      if (k.startsWith(prefix)) {
        count++;
        size += s;
      }
    }
    return { count, size };
  };
  const content = total("c\0");
  const snapshots = total("s\0");
  const ingests: UsageTotal = { count: 0, size: 0 };
  let staleIngests = 0;
  const mine = state.ingests.filter((i) => i.namespace === namespace);
  if (mine.length > 0) {
    const grace = options.ingestGracePeriod ?? INGEST_GRACE_PERIOD;
    const status = new Map((await options.content.listIngests()).map((s) => [s.ref, s]));
    for (const ing of mine) {
      const s = status.get(ing.backendRef);
      if (!s) continue;
      ingests.count++;
      ingests.size += s.offset;
      const leased = leasedIngests.has(`${ing.namespace}\0${ing.ref}`);
      if (!leased && ingestAbandoned(s, now, grace)) staleIngests += s.offset;
    }
  }
  const recordedElsewhere = new Set<string>();
  for (const rec of state.content.values()) {
    if (rec.namespace !== namespace) recordedElsewhere.add(rec.digest);
  }
  let imagesSize = 0, unusedImagesSize = 0;
  // A blob another namespace also records stays when this one lets go of it.
  const stays = (k: string) => k.startsWith("c\0") && recordedElsewhere.has(k.split("\0")[2]!);
  for (const k of allKeys) {
    const size = sizes.get(k) ?? 0;
    imagesSize += size;
    if (!usedKeys.has(k) && !stays(k)) unusedImagesSize += size;
  }
  let reclaimable = staleIngests;
  for (const [k, s] of sizes) if (!live.has(k) && !stays(k)) reclaimable += s;
  return {
    images,
    imagesSize,
    unusedImagesSize,
    content,
    snapshots,
    ingests,
    size: content.size + snapshots.size + ingests.size,
    reclaimable,
  };
}

function imagesOf(state: State, namespace: string) {
  return state.images.filter((i) => i.namespace === namespace);
}
