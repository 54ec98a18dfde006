/**
 * The daemon's system functions: version, info, disk usage (`system df`),
 * and the content and snapshot listings. Usable without HTTP.
 *
 * @module
 */

import type {
  ContentInfoRecord,
  DaemonInfo,
  SnapshotInfoRecord,
  SnapshotUsageInfo,
  SystemDfInfo,
  VersionInfo,
} from "../client/types.ts";
import { OCI_VERSION, VERSION } from "../version.ts";
import type { DaemonContext } from "./context.ts";
import type { InNamespace } from "./images.ts";

/** The daemon's version. */
export function versionInfo(): VersionInfo {
  return { version: VERSION, ociVersion: OCI_VERSION, api: "v1", deno: Deno.version.deno };
}

async function cgroupInfo(): Promise<DaemonInfo["cgroups"]> {
  try {
    const { detectCgroups } = await import("../runtime/cgroups/paths.ts");
    const layout = detectCgroups();
    const controllers = Object.keys(layout.v1).filter((c) => !c.startsWith("name="));
    if (layout.unified) {
      try {
        const text = await Deno.readTextFile(`${layout.unified.mountpoint}/cgroup.controllers`);
        for (const c of text.trim().split(/\s+/)) {
          if (c && !controllers.includes(c)) controllers.push(c);
        }
      } catch {
        // not readable: report the v1 controllers only
      }
    }
    return { mode: layout.mode, root: layout.root, controllers: controllers.sort() };
  } catch {
    return { mode: "unknown", root: "/sys/fs/cgroup", controllers: [] };
  }
}

async function seccompAvailable(): Promise<boolean> {
  for (
    const dir of [
      "/usr/lib/x86_64-linux-gnu",
      "/usr/lib/aarch64-linux-gnu",
      "/lib/x86_64-linux-gnu",
      "/usr/lib64",
      "/usr/lib",
    ]
  ) {
    try {
      await Deno.stat(`${dir}/libseccomp.so.2`);
      return true;
    } catch {
      // try the next
    }
  }
  return false;
}

/** What the daemon runs with: directories, snapshotters, cgroups, runtime features, shims. */
export async function daemonInfo(ctx: DaemonContext): Promise<DaemonInfo> {
  const images = await ctx.images();
  const [{ features }, cgroups, seccomp, shims] = await Promise.all([
    import("../runtime/features.ts"),
    cgroupInfo(),
    seccompAvailable(),
    Promise.resolve(ctx.hooks.shims?.() ?? []),
  ]);
  return {
    version: VERSION,
    root: ctx.config.root,
    state: ctx.config.state,
    address: ctx.config.api.address,
    pid: Deno.pid,
    startedAt: ctx.startedAt.toISOString(),
    snapshotters: images.snapshotters,
    defaultSnapshotter: images.defaultSnapshotter,
    cgroups,
    runtime: features(seccomp),
    shims,
    kernel: Deno.osRelease(),
    arch: Deno.build.arch,
  };
}

/** Disk usage of a namespace by kind: images, containers, content, snapshots. */
export async function systemDf(ctx: DaemonContext, options: InNamespace): Promise<SystemDfInfo> {
  const images = await ctx.images();
  const { namespace } = options;
  const usage = await images.usage({ namespace });
  const containers = images.db.containers.list(namespace);
  const used = new Set(containers.map((c) => c.image).filter((i) => i !== undefined));
  const active = usage.images.filter((i) => used.has(i.name)).length;
  return {
    images: {
      count: usage.images.length,
      // Each blob and snapshot once, and what removing every image no container uses would free.
      size: usage.imagesSize,
      reclaimable: usage.unusedImagesSize,
      active,
    },
    containers: { count: containers.length },
    content: usage.content,
    snapshots: usage.snapshots,
    ingests: usage.ingests,
    reclaimable: usage.reclaimable,
    size: usage.size,
  };
}

/** The blobs the namespace records. */
export async function listContent(
  ctx: DaemonContext,
  options: InNamespace,
): Promise<ContentInfoRecord[]> {
  const images = await ctx.images();
  const out: ContentInfoRecord[] = [];
  for await (const c of images.db.contentStore(options.namespace, images.content).list()) {
    out.push({
      digest: c.digest,
      size: c.size,
      labels: c.labels,
      createdAt: c.createdAt.toISOString(),
      updatedAt: c.updatedAt.toISOString(),
    });
  }
  return out.sort((a, b) =>
    a.createdAt.localeCompare(b.createdAt) || a.digest.localeCompare(b.digest)
  );
}

/** Options for the snapshot functions. */
export interface SnapshotOptions extends InNamespace {
  /** Default: the daemon's default snapshotter. */
  snapshotter?: string;
}

/** The snapshots the namespace records in a snapshotter. */
export async function listSnapshots(
  ctx: DaemonContext,
  options: SnapshotOptions,
): Promise<SnapshotInfoRecord[]> {
  const images = await ctx.images();
  const sn = images.db.snapshotter(options.namespace, images.snapshotter(options.snapshotter));
  const out: SnapshotInfoRecord[] = [];
  await sn.walk((s) => {
    out.push({
      name: s.name,
      ...(s.parent ? { parent: s.parent } : {}),
      kind: s.kind,
      labels: s.labels,
      createdAt: s.createdAt.toISOString(),
      updatedAt: s.updatedAt.toISOString(),
    });
  });
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

/** Disk usage of each snapshot the namespace records in a snapshotter. */
export async function snapshotUsage(
  ctx: DaemonContext,
  options: SnapshotOptions,
): Promise<SnapshotUsageInfo[]> {
  const images = await ctx.images();
  const sn = images.db.snapshotter(options.namespace, images.snapshotter(options.snapshotter));
  const names: string[] = [];
  await sn.walk((s) => void names.push(s.name));
  const out: SnapshotUsageInfo[] = [];
  for (const name of names.sort()) {
    try {
      const u = await sn.usage(name);
      out.push({ name, size: u.size, inodes: u.inodes });
    } catch {
      // removed meanwhile
    }
  }
  return out;
}
