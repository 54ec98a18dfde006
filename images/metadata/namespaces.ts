/**
 * Namespace records. Every image, container, lease, content record and
 * snapshot belongs to one namespace; objects create their namespace
 * implicitly, and a namespace can be removed only once it is empty.
 *
 * @module
 */

import { AlreadyExists, FailedPrecondition, NotFound } from "../../errors.ts";
import { date, decodeLabels, encodeLabels, type Sql } from "./_sql.ts";
import { validateIdentifier } from "./validate.ts";

/** A namespace record. */
export interface Namespace {
  name: string;
  labels: Record<string, string>;
  createdAt: Date;
  updatedAt: Date;
}

interface NamespaceRow {
  name: string;
  labels: string;
  created_at: number;
  updated_at: number;
}

function toNamespace(row: NamespaceRow): Namespace {
  return {
    name: row.name,
    labels: decodeLabels(row.labels),
    createdAt: date(row.created_at),
    updatedAt: date(row.updated_at),
  };
}

/** What still lives in a namespace, by kind (the tables a namespace must be empty of). */
const CONTENTS: ReadonlyArray<[string, string]> = [
  ["images", "images"],
  ["containers", "containers"],
  ["leases", "leases"],
  ["content", "content"],
  ["ingests", "ingests"],
  ["snapshots", "snapshots"],
];

/** Creates, lists, labels and removes namespaces. */
export class NamespaceStore {
  #sql: Sql;

  /** Internal: use `MetadataStore.namespaces`. */
  constructor(sql: Sql) {
    this.#sql = sql;
  }

  /** Creates namespace `name`; throws AlreadyExists or InvalidArgument. */
  create(name: string, options: { labels?: Record<string, string> } = {}): Namespace {
    validateIdentifier("namespace", name);
    const labels = encodeLabels(options.labels);
    return this.#sql.tx(() => {
      if (this.#sql.get("SELECT 1 FROM namespaces WHERE name = ?", name)) {
        throw new AlreadyExists(`Create namespace ${name}: it exists already`);
      }
      const now = this.#sql.now().getTime();
      this.#sql.run(
        "INSERT INTO namespaces (name, labels, created_at, updated_at) VALUES (?, ?, ?, ?)",
        name,
        labels,
        now,
        now,
      );
      return this.get(name);
    });
  }

  /** The namespace `name`; throws NotFound. */
  get(name: string): Namespace {
    const row = this.#sql.get<NamespaceRow>("SELECT * FROM namespaces WHERE name = ?", name);
    if (!row) throw new NotFound(`Get namespace ${name}: not found`);
    return toNamespace(row);
  }

  /** Every namespace, by name. */
  list(): Namespace[] {
    return this.#sql.all<NamespaceRow>("SELECT * FROM namespaces ORDER BY name").map(toNamespace);
  }

  /** Replaces the labels of namespace `name`; throws NotFound. */
  setLabels(name: string, labels: Record<string, string>): Namespace {
    const encoded = encodeLabels(labels);
    return this.#sql.tx(() => {
      const changed = this.#sql.run(
        "UPDATE namespaces SET labels = ?, updated_at = ? WHERE name = ?",
        encoded,
        this.#sql.now().getTime(),
        name,
      );
      if (changed === 0) throw new NotFound(`Update namespace ${name}: not found`);
      return this.get(name);
    });
  }

  /**
   * Removes namespace `name`; throws NotFound, or FailedPrecondition while it
   * still holds images, containers, leases, content or snapshots.
   */
  delete(name: string): void {
    this.#sql.tx(() => {
      if (!this.#sql.get("SELECT 1 FROM namespaces WHERE name = ?", name)) {
        throw new NotFound(`Remove namespace ${name}: not found`);
      }
      const left = CONTENTS.filter(([table]) =>
        this.#sql.get(`SELECT 1 FROM ${table} WHERE namespace = ? LIMIT 1`, name) !== undefined
      ).map(([, kind]) => kind);
      if (left.length > 0) {
        throw new FailedPrecondition(`Remove namespace ${name}: it still holds ${left.join(", ")}`);
      }
      this.#sql.run("DELETE FROM namespaces WHERE name = ?", name);
    });
  }
}
