/**
 * Container records (containerd's Container: metadata only; the running
 * process is a Task, which lives elsewhere): an id in a namespace, the image
 * it came from, its snapshotter and snapshot key, its OCI runtime spec, the
 * runtime that runs it, and labels.
 *
 * @module
 */

import { AlreadyExists, InvalidArgument, NotFound } from "../../errors.ts";
import type { Spec } from "../../runtime/spec.ts";
import { date, decodeLabels, encodeLabels, type Sql } from "./_sql.ts";
import { validateIdentifier } from "./validate.ts";

/** The runtime that runs a container, and its options. */
export interface ContainerRuntime {
  name: string;
  options?: Record<string, unknown>;
}

/** A container record. */
export interface Container {
  id: string;
  /** The image name it was created from, if any. */
  image?: string;
  snapshotter?: string;
  snapshotKey?: string;
  spec: Spec;
  runtime: ContainerRuntime;
  labels: Record<string, string>;
  createdAt: Date;
  updatedAt: Date;
}

/** The fields a caller gives to create a container record. */
export type ContainerInput = Omit<Container, "createdAt" | "updatedAt" | "labels"> & {
  labels?: Record<string, string>;
};

/**
 * A change to a container record: the fields given are replaced, the others
 * kept. The runtime and the snapshotter cannot change.
 */
export interface ContainerUpdate {
  id: string;
  image?: string;
  snapshotKey?: string;
  spec?: Spec;
  runtimeOptions?: Record<string, unknown>;
  labels?: Record<string, string>;
}

interface ContainerRow {
  id: string;
  image: string | null;
  snapshotter: string | null;
  snapshot_key: string | null;
  spec: string;
  runtime_name: string;
  runtime_options: string | null;
  labels: string;
  created_at: number;
  updated_at: number;
}

function toContainer(row: ContainerRow): Container {
  const c: Container = {
    id: row.id,
    spec: JSON.parse(row.spec) as Spec,
    runtime: { name: row.runtime_name },
    labels: decodeLabels(row.labels),
    createdAt: date(row.created_at),
    updatedAt: date(row.updated_at),
  };
  if (row.image !== null) c.image = row.image;
  if (row.snapshotter !== null) c.snapshotter = row.snapshotter;
  if (row.snapshot_key !== null) c.snapshotKey = row.snapshot_key;
  if (row.runtime_options !== null) c.runtime.options = JSON.parse(row.runtime_options);
  return c;
}

function validate(c: ContainerInput): void {
  validateIdentifier("container id", c.id);
  if (c.spec === undefined || c.spec === null || typeof c.spec !== "object") {
    throw new InvalidArgument(`Create container ${c.id}: the OCI spec must be set`);
  }
  if (!c.runtime || typeof c.runtime.name !== "string" || c.runtime.name === "") {
    throw new InvalidArgument(`Create container ${c.id}: the runtime name must be set`);
  }
  if (c.snapshotKey !== undefined && !c.snapshotter) {
    throw new InvalidArgument(`Create container ${c.id}: a snapshot key needs a snapshotter`);
  }
}

/** Container records, per namespace. */
export class ContainerStore {
  #sql: Sql;

  /** Internal: use `MetadataStore.containers`. */
  constructor(sql: Sql) {
    this.#sql = sql;
  }

  /** The container `id` in `namespace`; throws NotFound. */
  get(namespace: string, id: string): Container {
    const row = this.#sql.get<ContainerRow>(
      "SELECT * FROM containers WHERE namespace = ? AND id = ?",
      namespace,
      id,
    );
    if (!row) throw new NotFound(`Get container ${id}: not found in namespace ${namespace}`);
    return toContainer(row);
  }

  /** The containers of `namespace`, by id. */
  list(namespace: string): Container[] {
    return this.#sql.all<ContainerRow>(
      "SELECT * FROM containers WHERE namespace = ? ORDER BY id",
      namespace,
    )
      .map(toContainer);
  }

  /** Records a new container; throws AlreadyExists when the id is taken, InvalidArgument on bad fields. */
  create(namespace: string, container: ContainerInput): Container {
    validate(container);
    const labels = encodeLabels(container.labels);
    return this.#sql.tx(() => {
      this.#sql.ensureNamespace(namespace);
      if (
        this.#sql.get(
          "SELECT 1 FROM containers WHERE namespace = ? AND id = ?",
          namespace,
          container.id,
        )
      ) {
        throw new AlreadyExists(
          `Create container ${container.id}: it exists already in namespace ${namespace}`,
        );
      }
      const now = this.#sql.now().getTime();
      this.#sql.run(
        `INSERT INTO containers (namespace, id, image, snapshotter, snapshot_key, spec, runtime_name,
           runtime_options, labels, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        namespace,
        container.id,
        container.image ?? null,
        container.snapshotter ?? null,
        container.snapshotKey ?? null,
        JSON.stringify(container.spec),
        container.runtime.name,
        container.runtime.options === undefined ? null : JSON.stringify(container.runtime.options),
        labels,
        now,
        now,
      );
      return this.get(namespace, container.id);
    });
  }

  /** Changes the given fields of an existing container; throws NotFound or InvalidArgument. */
  update(namespace: string, update: ContainerUpdate): Container {
    const labels = update.labels === undefined ? undefined : encodeLabels(update.labels);
    return this.#sql.tx(() => {
      const old = this.get(namespace, update.id);
      if (update.snapshotKey !== undefined && !old.snapshotter) {
        throw new InvalidArgument(
          `Update container ${update.id}: a snapshot key needs a snapshotter`,
        );
      }
      if (update.spec !== undefined && (update.spec === null || typeof update.spec !== "object")) {
        throw new InvalidArgument(`Update container ${update.id}: the OCI spec must be an object`);
      }
      const options = update.runtimeOptions ?? old.runtime.options;
      this.#sql.run(
        `UPDATE containers SET image = ?, snapshot_key = ?, spec = ?, runtime_options = ?, labels = ?,
           updated_at = ? WHERE namespace = ? AND id = ?`,
        update.image ?? old.image ?? null,
        update.snapshotKey ?? old.snapshotKey ?? null,
        JSON.stringify(update.spec ?? old.spec),
        options === undefined ? null : JSON.stringify(options),
        labels ?? JSON.stringify(old.labels),
        this.#sql.now().getTime(),
        namespace,
        update.id,
      );
      return this.get(namespace, update.id);
    });
  }

  /** Removes the container record (not its snapshot: garbage collection does that); throws NotFound. */
  delete(namespace: string, id: string): void {
    const changed = this.#sql.run(
      "DELETE FROM containers WHERE namespace = ? AND id = ?",
      namespace,
      id,
    );
    if (changed === 0) {
      throw new NotFound(`Remove container ${id}: not found in namespace ${namespace}`);
    }
  }
}
