/**
 * The metadata store: one SQLite database (node:sqlite, WAL mode, versioned
 * schema) holding namespaces, images, containers, leases, and each
 * namespace's records of content and snapshots.
 *
 * @module
 */

import type { ContentStore, Snapshotter } from "../types.ts";
import { RwLock } from "./_lock.ts";
import { SCHEMA_VERSION, Sql } from "./_sql.ts";
import { ContainerStore } from "./containers.ts";
import { NamespacedContentStore, type NamespacedOptions } from "./content.ts";
import { ImageStore } from "./images.ts";
import { LeaseStore } from "./leases.ts";
import { NamespaceStore } from "./namespaces.ts";
import { NamespacedSnapshotter } from "./snapshots.ts";

/** Options for {@link MetadataStore.open}. */
export interface MetadataOptions {
  /** The clock (tests set it). Default: the real time. */
  now?: () => Date;
}

/**
 * The metadata database and its record stores.
 *
 * @example
 * ```ts
 * const db = MetadataStore.open("/var/lib/tug/metadata.db");
 * db.images.create("default", { name: "docker.io/library/busybox:latest", target });
 * const content = db.contentStore("default", localContentStore);
 * ```
 */
export class MetadataStore {
  /** The database file (or `:memory:`). */
  readonly path: string;
  readonly namespaces: NamespaceStore;
  readonly images: ImageStore;
  readonly containers: ContainerStore;
  readonly leases: LeaseStore;
  /** @internal The SQLite handle (garbage collection reads it). */
  readonly sql: Sql;
  /** @internal Shared by store writes, exclusive during a collection's sweep. */
  readonly lock: RwLock = new RwLock();

  private constructor(path: string, options: MetadataOptions) {
    this.path = path;
    this.sql = new Sql(path, options.now ?? (() => new Date()));
    this.namespaces = new NamespaceStore(this.sql);
    this.images = new ImageStore(this.sql);
    this.containers = new ContainerStore(this.sql);
    this.leases = new LeaseStore(this.sql);
  }

  /**
   * Opens (creating and migrating when needed) the database at `path`.
   * Throws FailedPrecondition when the file was written by a newer tug.
   */
  static open(path: string, options: MetadataOptions = {}): MetadataStore {
    return new MetadataStore(path, options);
  }

  /** The schema version this tug writes. */
  static readonly schemaVersion: number = SCHEMA_VERSION;

  /** The schema version of the open database. */
  get schemaVersion(): number {
    return this.sql.version();
  }

  /** `backend` as namespace `namespace` sees it, optionally holding what it writes in a lease. */
  contentStore(
    namespace: string,
    backend: ContentStore,
    options: NamespacedOptions = {},
  ): NamespacedContentStore {
    return new NamespacedContentStore(
      { sql: this.sql, leases: this.leases, lock: this.lock, backend, namespace },
      options,
    );
  }

  /** `backend` as namespace `namespace` sees it, optionally holding what it makes in a lease. */
  snapshotter(
    namespace: string,
    backend: Snapshotter,
    options: NamespacedOptions = {},
  ): NamespacedSnapshotter {
    return new NamespacedSnapshotter(
      { sql: this.sql, leases: this.leases, lock: this.lock, backend, namespace },
      options,
    );
  }

  /** Runs `fn` (synchronous) as one transaction: every change in it is kept, or none. */
  transaction<T>(fn: () => T): T {
    return this.sql.tx(fn);
  }

  /** Closes the database. */
  close(): void {
    this.sql.close();
  }
}
