/**
 * The daemon's namespace functions: create, list, get and remove namespace
 * records, publishing `/namespaces/*` events. Usable without HTTP.
 *
 * @module
 */

import { type NamespaceInfo, TOPICS } from "../client/types.ts";
import { FailedPrecondition } from "../errors.ts";
import type { DaemonContext } from "./context.ts";

interface NamespaceRecord {
  name: string;
  labels: Record<string, string>;
  createdAt: Date;
  updatedAt: Date;
}

function info(n: NamespaceRecord): NamespaceInfo {
  return {
    name: n.name,
    labels: n.labels,
    createdAt: n.createdAt.toISOString(),
    updatedAt: n.updatedAt.toISOString(),
  };
}

/** Every namespace, by name. */
export async function listNamespaces(ctx: DaemonContext): Promise<NamespaceInfo[]> {
  return (await ctx.images()).db.namespaces.list().map(info);
}

/** The namespace `name`; throws NotFound. */
export async function getNamespace(ctx: DaemonContext, name: string): Promise<NamespaceInfo> {
  return info((await ctx.images()).db.namespaces.get(name));
}

/** Creates namespace `name`; throws AlreadyExists or InvalidArgument. Publishes `/namespaces/create`. */
export async function createNamespace(
  ctx: DaemonContext,
  name: string,
  options: { labels?: Record<string, string> } = {},
): Promise<NamespaceInfo> {
  const created = (await ctx.images()).db.namespaces.create(
    name,
    options.labels ? { labels: options.labels } : {},
  );
  ctx.publish(name, TOPICS.namespaceCreate, { name });
  return info(created);
}

/**
 * Removes namespace `name`; throws NotFound, or FailedPrecondition while it
 * holds images, containers, leases, content or snapshots. Publishes
 * `/namespaces/delete`.
 */
export async function removeNamespace(ctx: DaemonContext, name: string): Promise<void> {
  const db = (await ctx.images()).db;
  try {
    db.namespaces.delete(name);
  } catch (err) {
    // Content and snapshots of removed images stay until the next collection: collect now, then retry.
    if (!(err instanceof FailedPrecondition)) throw err;
    const held = err.message.split("still holds ")[1] ?? "images";
    if (/images|containers|leases/.test(held)) throw err;
    await ctx.runGc();
    db.namespaces.delete(name);
  }
  ctx.publish(name, TOPICS.namespaceDelete, { name });
}
