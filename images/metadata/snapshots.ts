/**
 * A snapshotter as one namespace sees it (containerd's metadata snapshotter).
 * Keys are per namespace: the key `k` of namespace `ns` is the backing
 * snapshotter's key `ns/<id>/k`, with `<id>` unique, so namespaces never see
 * or collide with each other's snapshots. Labels live in the metadata
 * database (those under `containerd.io/snapshot/` are passed down too). When
 * opened with a lease, every snapshot made is added to it.
 *
 * @module
 */

import { AlreadyExists, FailedPrecondition, InvalidArgument, NotFound } from "../../errors.ts";
import type { Mount, SnapshotInfo, SnapshotKind, Snapshotter, SnapshotUsage } from "../types.ts";
import type { RwLock } from "./_lock.ts";
import { date, decodeLabels, encodeLabels, type Sql } from "./_sql.ts";
import type { NamespacedOptions } from "./content.ts";
import type { LeaseStore } from "./leases.ts";

/** Label prefix passed through to the backing snapshotter. */
const PASS_THROUGH = "containerd.io/snapshot/";

interface SnapshotRow {
  id: number;
  key: string;
  backend_key: string;
  parent: string | null;
  kind: SnapshotKind;
  labels: string;
  created_at: number;
  updated_at: number;
}

function toInfo(row: SnapshotRow): SnapshotInfo {
  const info: SnapshotInfo = {
    name: row.key,
    kind: row.kind,
    labels: decodeLabels(row.labels),
    createdAt: date(row.created_at),
    updatedAt: date(row.updated_at),
  };
  if (row.parent !== null) info.parent = row.parent;
  return info;
}

function passThrough(labels: Record<string, string> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(labels ?? {})) if (k.startsWith(PASS_THROUGH)) out[k] = v;
  return out;
}

function validateKey(what: string, key: string): void {
  if (typeof key !== "string" || key === "") {
    throw new InvalidArgument(`Invalid snapshot ${what}: must not be empty`);
  }
}

/** A Snapshotter restricted to one namespace (see the module documentation). */
export class NamespacedSnapshotter implements Snapshotter {
  readonly namespace: string;
  readonly backend: Snapshotter;
  readonly lease: string | undefined;
  #sql: Sql;
  #leases: LeaseStore;
  #lock: RwLock;

  /** Internal: use `MetadataStore.snapshotter()`. */
  constructor(
    parts: { sql: Sql; leases: LeaseStore; lock: RwLock; backend: Snapshotter; namespace: string },
    options: NamespacedOptions = {},
  ) {
    this.#sql = parts.sql;
    this.#leases = parts.leases;
    this.#lock = parts.lock;
    this.backend = parts.backend;
    this.namespace = parts.namespace;
    this.lease = options.lease;
    if (this.lease !== undefined) this.#leases.get(this.namespace, this.lease);
  }

  get name(): string {
    return this.backend.name;
  }

  #row(key: string): SnapshotRow | undefined {
    return this.#sql.get<SnapshotRow>(
      "SELECT * FROM snapshots WHERE namespace = ? AND snapshotter = ? AND key = ?",
      this.namespace,
      this.name,
      key,
    );
  }

  #require(key: string, action: string): SnapshotRow {
    const row = this.#row(key);
    if (!row) {
      throw new NotFound(`${action} snapshot ${key}: not found in namespace ${this.namespace}`);
    }
    return row;
  }

  #hold(key: string): void {
    if (this.lease !== undefined) {
      this.#leases.addResource(this.namespace, {
        lease: this.lease,
        resource: { type: "snapshot", snapshotter: this.name, key },
      });
    }
  }

  /** Inserts a row for `key` and returns its backing key. */
  #insert(args: { key: string; kind: SnapshotKind; parent?: string; labels: string }): string {
    const now = this.#sql.now().getTime();
    const { id } = this.#sql.get<{ id: number }>(
      `INSERT INTO snapshots (namespace, snapshotter, key, backend_key, parent, kind, labels, created_at, updated_at)
       VALUES (?, ?, ?, '', ?, ?, ?, ?, ?) RETURNING id`,
      this.namespace,
      this.name,
      args.key,
      args.parent ?? null,
      args.kind,
      args.labels,
      now,
      now,
    )!;
    const backendKey = `${this.namespace}/${id}/${args.key}`;
    this.#sql.run("UPDATE snapshots SET backend_key = ? WHERE id = ?", backendKey, id);
    this.#hold(args.key);
    return backendKey;
  }

  #delete(key: string): void {
    this.#sql.run(
      "DELETE FROM snapshots WHERE namespace = ? AND snapshotter = ? AND key = ?",
      this.namespace,
      this.name,
      key,
    );
  }

  /** The snapshot `key`, added to the lease (a pull holds the layers it finds unpacked already). */
  stat(key: string): Promise<SnapshotInfo> {
    try {
      const row = this.#require(key, "Stat");
      this.#hold(key);
      return Promise.resolve(toInfo(row));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Replaces the labels of snapshot `info.name`. */
  update(info: Pick<SnapshotInfo, "name" | "labels">): Promise<SnapshotInfo> {
    try {
      const labels = encodeLabels(info.labels);
      return Promise.resolve(this.#sql.tx(() => {
        this.#require(info.name, "Update");
        this.#sql.run(
          "UPDATE snapshots SET labels = ?, updated_at = ? WHERE namespace = ? AND snapshotter = ? AND key = ?",
          labels,
          this.#sql.now().getTime(),
          this.namespace,
          this.name,
          info.name,
        );
        return toInfo(this.#require(info.name, "Update"));
      }));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  async usage(key: string): Promise<SnapshotUsage> {
    const row = this.#require(key, "Get usage of");
    return await this.backend.usage(row.backend_key);
  }

  async mounts(key: string): Promise<Mount[]> {
    const row = this.#require(key, "Get mounts of");
    return await this.backend.mounts(row.backend_key);
  }

  prepare(
    key: string,
    parent?: string,
    options: { labels?: Record<string, string> } = {},
  ): Promise<Mount[]> {
    return this.#create("active", key, { ...(parent !== undefined ? { parent } : {}), ...options });
  }

  view(
    key: string,
    parent?: string,
    options: { labels?: Record<string, string> } = {},
  ): Promise<Mount[]> {
    return this.#create("view", key, { ...(parent !== undefined ? { parent } : {}), ...options });
  }

  async #create(
    kind: "active" | "view",
    key: string,
    options: { parent?: string; labels?: Record<string, string> },
  ): Promise<Mount[]> {
    const action = kind === "active" ? "Prepare" : "View";
    validateKey("key", key);
    const labels = encodeLabels(options.labels);
    return await this.#lock.shared(async () => {
      const { backendKey, backendParent } = this.#sql.tx(() => {
        this.#sql.ensureNamespace(this.namespace);
        if (this.#row(key)) {
          throw new AlreadyExists(
            `${action} snapshot ${key}: it exists already in namespace ${this.namespace}`,
          );
        }
        let backendParent: string | undefined;
        if (options.parent !== undefined && options.parent !== "") {
          const p = this.#require(options.parent, `${action} snapshot ${key}: parent`);
          if (p.kind !== "committed") {
            throw new FailedPrecondition(
              `${action} snapshot ${key}: parent ${options.parent} is not committed`,
            );
          }
          backendParent = p.backend_key;
        }
        const backendKey = this.#insert({
          key,
          kind,
          labels,
          ...(options.parent ? { parent: options.parent } : {}),
        });
        return { backendKey, backendParent };
      });
      try {
        const pass = passThrough(options.labels);
        const opts = Object.keys(pass).length > 0 ? { labels: pass } : {};
        return kind === "active"
          ? await this.backend.prepare(backendKey, backendParent, opts)
          : await this.backend.view(backendKey, backendParent, opts);
      } catch (err) {
        this.#delete(key);
        throw err;
      }
    });
  }

  /**
   * Records the committed snapshot `name` of active `key`; returns the
   * backing names. When `name` exists already (another unpack of the same
   * layer committed it meanwhile), it is added to the lease, as if made here,
   * and AlreadyExists is thrown.
   */
  #commitRow(
    name: string,
    key: string,
    labels: Record<string, string> | undefined,
  ): { backendName: string; backendKey: string } {
    try {
      return this.#sql.tx(() => {
        const active = this.#require(key, `Commit snapshot ${name}: active`);
        if (active.kind !== "active") {
          throw new FailedPrecondition(
            `Commit snapshot ${name}: ${key} is a ${active.kind} snapshot, not an active one`,
          );
        }
        if (this.#row(name)) {
          throw new AlreadyExists(
            `Commit snapshot ${name}: it exists already in namespace ${this.namespace}`,
          );
        }
        // The committed snapshot keeps the active one's labels, with the given ones on top.
        const backendName = this.#insert({
          key: name,
          kind: "committed",
          labels: encodeLabels({ ...decodeLabels(active.labels), ...labels }),
          ...(active.parent !== null ? { parent: active.parent } : {}),
        });
        return { backendName, backendKey: active.backend_key };
      });
    } catch (err) {
      if (err instanceof AlreadyExists) this.#hold(name);
      throw err;
    }
  }

  async commit(
    name: string,
    key: string,
    options: { labels?: Record<string, string> } = {},
  ): Promise<void> {
    validateKey("name", name);
    encodeLabels(options.labels);
    await this.#lock.shared(async () => {
      const { backendName, backendKey } = this.#commitRow(name, key, options.labels);
      try {
        const pass = passThrough(options.labels);
        await this.backend.commit(
          backendName,
          backendKey,
          Object.keys(pass).length > 0 ? { labels: pass } : {},
        );
      } catch (err) {
        this.#delete(name);
        throw err;
      }
      this.#delete(key);
    });
  }

  async remove(key: string): Promise<void> {
    await this.#lock.shared(async () => {
      const row = this.#require(key, "Remove");
      const child = this.#sql.get<{ key: string }>(
        "SELECT key FROM snapshots WHERE namespace = ? AND snapshotter = ? AND parent = ? LIMIT 1",
        this.namespace,
        this.name,
        key,
      );
      if (child) {
        throw new FailedPrecondition(
          `Remove snapshot ${key}: snapshot ${child.key} is based on it`,
        );
      }
      try {
        await this.backend.remove(row.backend_key);
      } catch (err) {
        if (!(err instanceof NotFound)) throw err;
      }
      this.#delete(key);
    });
  }

  async walk(fn: (info: SnapshotInfo) => void | Promise<void>): Promise<void> {
    const rows = this.#sql.all<SnapshotRow>(
      "SELECT * FROM snapshots WHERE namespace = ? AND snapshotter = ? ORDER BY key",
      this.namespace,
      this.name,
    );
    for (const row of rows) await fn(toInfo(row));
  }

  /** Does nothing: the backing snapshotter belongs to whoever opened it. */
  close(): Promise<void> {
    return Promise.resolve();
  }
}
