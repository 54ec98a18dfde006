/**
 * The content store as one namespace sees it (containerd's metadata content
 * store). Blobs live once in the shared backing store; a namespace sees a
 * blob only once it is recorded there, and keeps its own labels on it.
 * Writing a blob that another namespace already committed records it here
 * without moving a byte (and answers AlreadyExists, so a pull skips it).
 * Deleting removes this namespace's record, and the bytes once no namespace
 * records them. When opened with a lease, every
 * blob and ingest touched is added to it.
 *
 * @module
 */

import { AlreadyExists, InvalidArgument, NotFound } from "../../errors.ts";
import type { ContentInfo, ContentStore, ContentWriter, Digest, IngestStatus } from "../types.ts";
import type { RwLock } from "./_lock.ts";
import { date, decodeLabels, encodeLabels, type Sql } from "./_sql.ts";
import type { LeaseStore } from "./leases.ts";
import { validateDigest } from "./validate.ts";

/** Options for a namespaced view of a store. */
export interface NamespacedOptions {
  /** A lease (in the same namespace) that holds everything written through this view. */
  lease?: string;
}

interface ContentRow {
  digest: string;
  labels: string;
  created_at: number;
  updated_at: number;
}

interface IngestRow {
  ref: string;
  backend_ref: string;
}

/** The backing store's ingest ref for `ref` in `namespace`. */
export function backendIngestRef(namespace: string, ref: string): string {
  return `${namespace}/${ref}`;
}

/** A ContentStore restricted to one namespace's records (see the module documentation). */
export class NamespacedContentStore implements ContentStore {
  readonly namespace: string;
  readonly backend: ContentStore;
  readonly lease: string | undefined;
  #sql: Sql;
  #leases: LeaseStore;
  #lock: RwLock;

  /** Internal: use `MetadataStore.contentStore()`. */
  constructor(
    parts: { sql: Sql; leases: LeaseStore; lock: RwLock; backend: ContentStore; namespace: string },
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

  #row(digest: Digest): ContentRow | undefined {
    return this.#sql.get<ContentRow>(
      "SELECT digest, labels, created_at, updated_at FROM content WHERE namespace = ? AND digest = ?",
      this.namespace,
      digest,
    );
  }

  #require(digest: Digest, action: string): ContentRow {
    validateDigest(digest);
    const row = this.#row(digest);
    if (!row) throw new NotFound(`${action} ${digest}: not found in namespace ${this.namespace}`);
    return row;
  }

  #hold(resource: { type: "content"; digest: string } | { type: "ingest"; ref: string }): void {
    if (this.lease !== undefined) {
      this.#leases.addResource(this.namespace, { lease: this.lease, resource });
    }
  }

  /** Records `digest` in this namespace (with `labels` when it is new) and in the lease. */
  #record(digest: Digest, labels: Record<string, string> | undefined): void {
    const encoded = encodeLabels(labels);
    this.#sql.tx(() => {
      this.#sql.ensureNamespace(this.namespace);
      const now = this.#sql.now().getTime();
      this.#sql.run(
        `INSERT INTO content (namespace, digest, labels, created_at, updated_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (namespace, digest) DO UPDATE SET labels = json_patch(labels, excluded.labels)`,
        this.namespace,
        digest,
        encoded,
        now,
        now,
      );
      this.#hold({ type: "content", digest });
    });
  }

  #toInfo(row: ContentRow, size: number): ContentInfo {
    return {
      digest: row.digest,
      size,
      createdAt: date(row.created_at),
      updatedAt: date(row.updated_at),
      labels: decodeLabels(row.labels),
    };
  }

  /**
   * The row of `digest`, added to the lease in the same step: what a pull
   * finds already stored is held like what it writes, so that a collection
   * meanwhile (another image removed) cannot take it.
   */
  #found(digest: Digest, action: string): ContentRow {
    const row = this.#require(digest, action);
    this.#hold({ type: "content", digest });
    return row;
  }

  async info(digest: Digest): Promise<ContentInfo> {
    const row = this.#found(digest, "Get content info");
    const backend = await this.backend.info(digest);
    return this.#toInfo(row, backend.size);
  }

  async read(digest: Digest, options?: { offset?: number }): Promise<ReadableStream<Uint8Array>> {
    this.#found(digest, "Read content");
    return await this.backend.read(digest, options);
  }

  async readBytes(digest: Digest): Promise<Uint8Array> {
    this.#found(digest, "Read content");
    return await this.backend.readBytes(digest);
  }

  async writer(
    ref: string,
    options: { expected?: Digest; total?: number } = {},
  ): Promise<ContentWriter> {
    if (typeof ref !== "string" || ref === "") {
      throw new InvalidArgument("Open content writer: the ref is empty");
    }
    const expected = options.expected;
    if (expected !== undefined) {
      validateDigest(expected);
      if (this.#row(expected)) {
        this.#hold({ type: "content", digest: expected });
        throw new AlreadyExists(
          `Open content writer ${ref}: ${expected} exists already in namespace ${this.namespace}`,
        );
      }
      // Shared content: committed by another namespace, so record it here without writing.
      const shared = await this.#lock.shared(async () => {
        try {
          const info = await this.backend.info(expected);
          if (options.total !== undefined && info.size !== options.total) return false;
        } catch (err) {
          if (err instanceof NotFound) return false;
          throw err;
        }
        this.#record(expected, undefined);
        return true;
      });
      if (shared) {
        throw new AlreadyExists(
          `Open content writer ${ref}: ${expected} exists already in namespace ${this.namespace}`,
        );
      }
    }
    const backendRef = backendIngestRef(this.namespace, ref);
    this.#sql.tx(() => {
      this.#sql.ensureNamespace(this.namespace);
      this.#sql.run(
        `INSERT INTO ingests (namespace, ref, backend_ref, expected, created_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (namespace, ref) DO UPDATE SET expected = coalesce(excluded.expected, expected)`,
        this.namespace,
        ref,
        backendRef,
        expected ?? null,
        this.#sql.now().getTime(),
      );
      this.#hold({ type: "ingest", ref });
    });
    let inner: ContentWriter;
    try {
      inner = await this.backend.writer(backendRef, options);
    } catch (err) {
      if (err instanceof AlreadyExists && expected !== undefined) {
        // Committed meanwhile (by another namespace): record it here.
        await this.#lock.shared(() => Promise.resolve(this.#record(expected, undefined)));
      }
      throw err;
    }
    return new NamespacedWriter(this, ref, inner);
  }

  /** @internal Commits `inner` and records the blob (called by the writer). */
  async commitWriter(
    ref: string,
    inner: ContentWriter,
    args: { size: number; digest: Digest; labels?: Record<string, string> },
  ): Promise<void> {
    validateDigest(args.digest);
    if (args.labels) encodeLabels(args.labels);
    await this.#lock.shared(async () => {
      try {
        await inner.commit(args.size, args.digest);
      } catch (err) {
        if (!(err instanceof AlreadyExists)) {
          if (err instanceof InvalidArgument) this.#forgetIngest(ref);
          throw err;
        }
        // The bytes are committed already (identical, by digest): record them here unless this namespace has them.
      }
      this.#sql.tx(() => {
        this.#forgetIngest(ref);
        if (this.#row(args.digest)) {
          throw new AlreadyExists(
            `Commit ${ref}: ${args.digest} exists already in namespace ${this.namespace}`,
          );
        }
        this.#record(args.digest, args.labels);
      });
    });
  }

  /** Drops the record of ingest `ref` (and the lease's hold on it): it was committed or aborted. */
  #forgetIngest(ref: string): void {
    this.#sql.run("DELETE FROM ingests WHERE namespace = ? AND ref = ?", this.namespace, ref);
    if (this.lease !== undefined) {
      this.#sql.run(
        "DELETE FROM lease_resources WHERE namespace = ? AND lease = ? AND type = 'ingest' AND id = ?",
        this.namespace,
        this.lease,
        ref,
      );
    }
  }

  async listIngests(): Promise<IngestStatus[]> {
    const rows = this.#sql.all<IngestRow>(
      "SELECT ref, backend_ref FROM ingests WHERE namespace = ?",
      this.namespace,
    );
    const byBackend = new Map(rows.map((r) => [r.backend_ref, r.ref]));
    const result: IngestStatus[] = [];
    for (const status of await this.backend.listIngests()) {
      const ref = byBackend.get(status.ref);
      if (ref !== undefined) result.push({ ...status, ref });
    }
    return result.sort((a, b) => a.ref < b.ref ? -1 : a.ref > b.ref ? 1 : 0);
  }

  async abort(ref: string): Promise<void> {
    const row = this.#sql.get<IngestRow>(
      "SELECT ref, backend_ref FROM ingests WHERE namespace = ? AND ref = ?",
      this.namespace,
      ref,
    );
    if (!row) throw new NotFound(`Abort ingest ${ref}: not found in namespace ${this.namespace}`);
    this.#forgetIngest(ref);
    await this.backend.abort(row.backend_ref).catch((err) => {
      if (!(err instanceof NotFound)) throw err;
    });
  }

  async *list(): AsyncIterable<ContentInfo> {
    const rows = this.#sql.all<ContentRow>(
      "SELECT digest, labels, created_at, updated_at FROM content WHERE namespace = ? ORDER BY digest",
      this.namespace,
    );
    for (const row of rows) {
      let size: number;
      try {
        size = (await this.backend.info(row.digest)).size;
      } catch (err) {
        if (err instanceof NotFound) continue;
        throw err;
      }
      yield this.#toInfo(row, size);
    }
  }

  /** Sets the given labels on this namespace's record of `digest`; an empty value removes a label. */
  async update(digest: Digest, labels: Record<string, string>): Promise<ContentInfo> {
    encodeLabels(labels);
    this.#sql.tx(() => {
      const row = this.#require(digest, "Update content labels");
      const current = decodeLabels(row.labels);
      for (const [key, value] of Object.entries(labels)) {
        if (value === "") delete current[key];
        else current[key] = value;
      }
      this.#sql.run(
        "UPDATE content SET labels = ?, updated_at = ? WHERE namespace = ? AND digest = ?",
        encodeLabels(current),
        this.#sql.now().getTime(),
        this.namespace,
        digest,
      );
    });
    return await this.info(digest);
  }

  /**
   * Removes this namespace's record of `digest`, and the bytes too when no
   * other namespace records them.
   */
  async delete(digest: Digest): Promise<void> {
    validateDigest(digest);
    await this.#lock.exclusive(async () => {
      const changed = this.#sql.run(
        "DELETE FROM content WHERE namespace = ? AND digest = ?",
        this.namespace,
        digest,
      );
      if (changed === 0) {
        throw new NotFound(`Delete content ${digest}: not found in namespace ${this.namespace}`);
      }
      if (this.#sql.get("SELECT 1 FROM content WHERE digest = ? LIMIT 1", digest)) return;
      await this.backend.delete(digest).catch((err) => {
        if (!(err instanceof NotFound)) throw err;
      });
    });
  }
}

/** A writer whose commit records the blob in the namespace. */
class NamespacedWriter implements ContentWriter {
  readonly ref: string;
  #store: NamespacedContentStore;
  #inner: ContentWriter;

  constructor(store: NamespacedContentStore, ref: string, inner: ContentWriter) {
    this.#store = store;
    this.ref = ref;
    this.#inner = inner;
  }

  get offset(): number {
    return this.#inner.offset;
  }

  write(chunk: Uint8Array): Promise<void> {
    return this.#inner.write(chunk);
  }

  commit(
    expectedSize: number,
    expected: Digest,
    options: { labels?: Record<string, string> } = {},
  ): Promise<void> {
    return this.#store.commitWriter(this.ref, this.#inner, {
      size: expectedSize,
      digest: expected,
      ...(options.labels ? { labels: options.labels } : {}),
    });
  }

  close(): Promise<void> {
    return this.#inner.close();
  }
}
