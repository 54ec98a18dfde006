/**
 * Leases: a lease holds content, ingests and snapshots so that garbage
 * collection keeps them while an operation (a pull, an import, an unpack)
 * has not yet recorded what will refer to them. A lease expires at the time
 * of its `containerd.io/gc.expire` label; an expired lease protects nothing
 * and is removed by the next collection.
 *
 * @module
 */

import { AlreadyExists, InvalidArgument, NotFound } from "../../errors.ts";
import { date, decodeLabels, encodeLabels, isForeignKeyViolation, type Sql } from "./_sql.ts";
import { expiryOf, GC_LABELS } from "./labels.ts";
import { validateIdentifier } from "./validate.ts";

/** A lease record. */
export interface Lease {
  id: string;
  labels: Record<string, string>;
  createdAt: Date;
  /** From the `containerd.io/gc.expire` label. */
  expiresAt?: Date;
}

/** Options for {@link LeaseStore.create}. */
export interface LeaseOptions {
  /** Default: a random id. */
  id?: string;
  labels?: Record<string, string>;
  /** Expiry time; sets the `containerd.io/gc.expire` label. */
  expiresAt?: Date;
  /** Expiry in milliseconds from now (ignored when `expiresAt` is given). */
  expiresIn?: number;
}

/** A resource a lease holds. */
export type LeaseResource =
  | { type: "content"; digest: string }
  | { type: "ingest"; ref: string }
  | { type: "snapshot"; snapshotter: string; key: string };

/** A lease and one resource, for {@link LeaseStore.addResource} and {@link LeaseStore.deleteResource}. */
export interface LeaseResourceRef {
  lease: string;
  resource: LeaseResource;
}

interface LeaseRow {
  id: string;
  labels: string;
  created_at: number;
}

interface ResourceRow {
  type: "content" | "ingest" | "snapshot";
  snapshotter: string;
  id: string;
}

function toLease(row: LeaseRow): Lease {
  const labels = decodeLabels(row.labels);
  const lease: Lease = { id: row.id, labels, createdAt: date(row.created_at) };
  const exp = expiryOf(labels);
  if (exp) lease.expiresAt = exp;
  return lease;
}

/** The (type, snapshotter, id) columns of a resource. */
export function resourceColumns(r: LeaseResource): [string, string, string] {
  switch (r.type) {
    case "content":
      return ["content", "", r.digest];
    case "ingest":
      return ["ingest", "", r.ref];
    case "snapshot":
      return ["snapshot", r.snapshotter, r.key];
    default:
      throw new InvalidArgument(
        `Invalid lease resource type ${JSON.stringify((r as { type: unknown }).type)}`,
      );
  }
}

function toResource(row: ResourceRow): LeaseResource {
  switch (row.type) {
    case "content":
      return { type: "content", digest: row.id };
    case "ingest":
      return { type: "ingest", ref: row.id };
    case "snapshot":
      return { type: "snapshot", snapshotter: row.snapshotter, key: row.id };
  }
}

function randomId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(6));
  return `${Date.now()}-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/** Lease records and the resources they hold, per namespace. */
export class LeaseStore {
  #sql: Sql;

  /** Internal: use `MetadataStore.leases`. */
  constructor(sql: Sql) {
    this.#sql = sql;
  }

  /** Creates a lease; throws AlreadyExists or InvalidArgument. */
  create(namespace: string, options: LeaseOptions = {}): Lease {
    const id = options.id ?? randomId();
    validateIdentifier("lease id", id);
    const labels = { ...options.labels };
    const expiresAt = options.expiresAt ??
      (options.expiresIn === undefined
        ? undefined
        : new Date(this.#sql.now().getTime() + options.expiresIn));
    if (expiresAt) labels[GC_LABELS.expire] = expiresAt.toISOString();
    const encoded = encodeLabels(labels);
    return this.#sql.tx(() => {
      this.#sql.ensureNamespace(namespace);
      if (this.#sql.get("SELECT 1 FROM leases WHERE namespace = ? AND id = ?", namespace, id)) {
        throw new AlreadyExists(`Create lease ${id}: it exists already in namespace ${namespace}`);
      }
      this.#sql.run(
        "INSERT INTO leases (namespace, id, labels, created_at) VALUES (?, ?, ?, ?)",
        namespace,
        id,
        encoded,
        this.#sql.now().getTime(),
      );
      return this.get(namespace, id);
    });
  }

  /** The lease `id`; throws NotFound. */
  get(namespace: string, id: string): Lease {
    const row = this.#sql.get<LeaseRow>(
      "SELECT * FROM leases WHERE namespace = ? AND id = ?",
      namespace,
      id,
    );
    if (!row) throw new NotFound(`Get lease ${id}: not found in namespace ${namespace}`);
    return toLease(row);
  }

  /** The leases of `namespace`, by id. */
  list(namespace: string): Lease[] {
    return this.#sql.all<LeaseRow>(
      "SELECT * FROM leases WHERE namespace = ? ORDER BY id",
      namespace,
    ).map(toLease);
  }

  /** Removes the lease; what it held becomes collectable. Throws NotFound. */
  delete(namespace: string, id: string): void {
    const changed = this.#sql.run(
      "DELETE FROM leases WHERE namespace = ? AND id = ?",
      namespace,
      id,
    );
    if (changed === 0) {
      throw new NotFound(`Remove lease ${id}: not found in namespace ${namespace}`);
    }
  }

  /** Makes the lease hold `resource` (idempotent); throws NotFound when the lease does not exist. */
  addResource(namespace: string, ref: LeaseResourceRef): void {
    const [type, snapshotter, id] = resourceColumns(ref.resource);
    try {
      this.#sql.run(
        "INSERT OR IGNORE INTO lease_resources (namespace, lease, type, snapshotter, id) VALUES (?, ?, ?, ?, ?)",
        namespace,
        ref.lease,
        type,
        snapshotter,
        id,
      );
    } catch (err) {
      if (isForeignKeyViolation(err)) {
        throw new NotFound(`Add to lease ${ref.lease}: not found in namespace ${namespace}`, {
          cause: err,
        });
      }
      throw err;
    }
  }

  /** Makes the lease stop holding `resource`; throws NotFound when the lease does not exist. */
  deleteResource(namespace: string, ref: LeaseResourceRef): void {
    const [type, snapshotter, id] = resourceColumns(ref.resource);
    this.#sql.tx(() => {
      this.get(namespace, ref.lease);
      this.#sql.run(
        "DELETE FROM lease_resources WHERE namespace = ? AND lease = ? AND type = ? AND snapshotter = ? AND id = ?",
        namespace,
        ref.lease,
        type,
        snapshotter,
        id,
      );
    });
  }

  /** What the lease holds; throws NotFound. */
  listResources(namespace: string, id: string): LeaseResource[] {
    this.get(namespace, id);
    return this.#sql.all<ResourceRow>(
      "SELECT type, snapshotter, id FROM lease_resources WHERE namespace = ? AND lease = ? ORDER BY type, snapshotter, id",
      namespace,
      id,
    ).map(toResource);
  }
}
