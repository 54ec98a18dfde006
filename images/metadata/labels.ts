/**
 * Labels with a meaning to garbage collection, as containerd defines them,
 * so that records and content written by containerd's conventions (and by
 * tug's puller) are understood the same way.
 *
 * - `containerd.io/gc.root` on a content record or snapshot: keep it even when nothing refers to it.
 * - `containerd.io/gc.ref.content` and `containerd.io/gc.ref.content.<any name>`: the value
 *   is a digest this object refers to (an index to its manifests, a manifest to its config and layers).
 * - `containerd.io/gc.ref.snapshot.<snapshotter>` and `…<snapshotter>/<any name>`: the value is a
 *   snapshot key in that snapshotter (an image config to its unpacked chain).
 * - `containerd.io/gc.expire` on a lease or an image: an RFC 3339 time after which it no longer
 *   protects anything (a lease is then removed).
 * - `containerd.io/gc.flat` on a lease: protect the lease's resources only, not what they refer to.
 *
 * @module
 */

/** containerd's garbage collection labels. */
export const GC_LABELS = {
  root: "containerd.io/gc.root",
  refContent: "containerd.io/gc.ref.content",
  refSnapshotPrefix: "containerd.io/gc.ref.snapshot.",
  expire: "containerd.io/gc.expire",
  flat: "containerd.io/gc.flat",
} as const;

/** A reference found in labels. */
export type LabelRef =
  | { type: "content"; digest: string }
  | { type: "snapshot"; snapshotter: string; key: string };

/** The content and snapshot references that `labels` declare. */
export function labelRefs(labels: Record<string, string>): LabelRef[] {
  const refs: LabelRef[] = [];
  for (const [key, value] of Object.entries(labels)) {
    if (key === GC_LABELS.refContent || key.startsWith(GC_LABELS.refContent + ".")) {
      refs.push({ type: "content", digest: value });
    } else if (key.startsWith(GC_LABELS.refSnapshotPrefix)) {
      const rest = key.slice(GC_LABELS.refSnapshotPrefix.length);
      const snapshotter = rest.split("/", 1)[0]!;
      if (snapshotter !== "") refs.push({ type: "snapshot", snapshotter, key: value });
    }
  }
  return refs;
}

/**
 * The expiry time that `labels` set (`containerd.io/gc.expire`), or undefined
 * when there is none or it does not parse (an unparsable value never expires,
 * as in containerd: a bad label must not make data disappear).
 */
export function expiryOf(labels: Record<string, string>): Date | undefined {
  const value = labels[GC_LABELS.expire];
  if (value === undefined) return undefined;
  const t = Date.parse(value);
  return Number.isNaN(t) ? undefined : new Date(t);
}

/** True when `labels` set an expiry that is at or before `now`. */
export function isExpired(labels: Record<string, string>, now: Date): boolean {
  const exp = expiryOf(labels);
  return exp !== undefined && exp.getTime() <= now.getTime();
}
