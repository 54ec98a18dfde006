/**
 * Internal to images/snapshots: a snapshotter's own metadata (keys, parents,
 * kinds, labels, cached usage) in a small `node:sqlite` database beside its
 * snapshot directories, as containerd's snapshotters keep their own bolt
 * database. WAL mode; each multi-step change is one transaction.
 *
 * @module
 */

import { DatabaseSync, type SQLInputValue } from "node:sqlite";
import { FailedPrecondition, Internal, InvalidArgument } from "../../errors.ts";
import type { SnapshotInfo, SnapshotKind, SnapshotUsage } from "../types.ts";

/** One row of the snapshots table. */
export interface SnapshotRow {
  id: number;
  key: string;
  parent_id: number | null;
  kind: SnapshotKind;
  labels: string;
  created_at: number;
  updated_at: number;
  size: number | null;
  inodes: number | null;
}

const MIGRATIONS: readonly string[] = [
  `CREATE TABLE snapshots (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     key TEXT NOT NULL UNIQUE,
     parent_id INTEGER REFERENCES snapshots(id),
     kind TEXT NOT NULL CHECK (kind IN ('active', 'view', 'committed')),
     labels TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     updated_at INTEGER NOT NULL,
     size INTEGER,
     inodes INTEGER
   ) STRICT;
   CREATE INDEX snapshots_by_parent ON snapshots(parent_id);`,
];

/** Throws InvalidArgument unless `labels` maps strings to strings. */
export function encodeLabels(labels: Record<string, string> | undefined): string {
  const l = labels ?? {};
  if (typeof l !== "object" || l === null || Array.isArray(l)) {
    throw new InvalidArgument("Invalid labels: not an object");
  }
  for (const [k, v] of Object.entries(l)) {
    if (k === "") throw new InvalidArgument("Invalid label: the key must not be empty");
    if (typeof v !== "string") {
      throw new InvalidArgument(`Invalid label ${JSON.stringify(k)}: the value must be a string`);
    }
  }
  return JSON.stringify(l);
}

/** The metadata database of one snapshotter. */
export class SnapshotStore {
  readonly #db: DatabaseSync;
  #statements = new Map<string, ReturnType<DatabaseSync["prepare"]>>();
  #inTx = false;

  constructor(path: string) {
    try {
      this.#db = new DatabaseSync(path);
    } catch (err) {
      throw new Internal(`Cannot open snapshot metadata ${path}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    try {
      this.#db.exec("PRAGMA busy_timeout = 5000");
      const mode = this.#get<{ journal_mode: string }>("PRAGMA journal_mode = WAL");
      if (mode?.journal_mode !== "wal") {
        throw new Internal(`Cannot open snapshot metadata ${path}: cannot switch to WAL mode`);
      }
      this.#db.exec("PRAGMA foreign_keys = ON");
      this.#db.exec("PRAGMA synchronous = FULL");
      const version = this.#get<{ user_version: number }>("PRAGMA user_version")!.user_version;
      if (version > MIGRATIONS.length) {
        throw new FailedPrecondition(
          `Cannot open snapshot metadata ${path}: its schema version ${version} is newer than this tug supports (${MIGRATIONS.length})`,
        );
      }
      for (let v = version; v < MIGRATIONS.length; v++) {
        this.tx(() => {
          this.#db.exec(MIGRATIONS[v]!);
          this.#db.exec(`PRAGMA user_version = ${v + 1}`);
        });
      }
    } catch (err) {
      this.#db.close();
      throw err;
    }
  }

  #prepare(sql: string) {
    let st = this.#statements.get(sql);
    if (!st) {
      st = this.#db.prepare(sql);
      this.#statements.set(sql, st);
    }
    return st;
  }

  #get<T>(sql: string, ...params: SQLInputValue[]): T | undefined {
    return this.#prepare(sql).get(...params) as T | undefined;
  }

  /** Runs the synchronous `fn` in one transaction: all of it is committed, or none. */
  tx<T>(fn: () => T): T {
    if (this.#inTx) return fn();
    this.#db.exec("BEGIN IMMEDIATE");
    this.#inTx = true;
    try {
      const result = fn();
      this.#db.exec("COMMIT");
      return result;
    } catch (err) {
      this.#db.exec("ROLLBACK");
      throw err;
    } finally {
      this.#inTx = false;
    }
  }

  get(key: string): SnapshotRow | undefined {
    return this.#get<SnapshotRow>("SELECT * FROM snapshots WHERE key = ?", key);
  }

  byId(id: number): SnapshotRow | undefined {
    return this.#get<SnapshotRow>("SELECT * FROM snapshots WHERE id = ?", id);
  }

  all(): SnapshotRow[] {
    return this.#prepare("SELECT * FROM snapshots ORDER BY id").all() as unknown as SnapshotRow[];
  }

  /** Ids of the snapshot `id` and its ancestors, itself first. */
  chain(id: number): number[] {
    const rows = this.#prepare(
      `WITH RECURSIVE chain(id, parent_id, depth) AS (
         SELECT id, parent_id, 0 FROM snapshots WHERE id = ?
         UNION ALL
         SELECT s.id, s.parent_id, c.depth + 1 FROM snapshots s JOIN chain c ON s.id = c.parent_id
       ) SELECT id FROM chain ORDER BY depth`,
    ).all(id) as { id: number }[];
    return rows.map((r) => r.id);
  }

  children(id: number): number {
    return this.#get<{ n: number }>("SELECT count(*) AS n FROM snapshots WHERE parent_id = ?", id)!
      .n;
  }

  insert(
    key: string,
    parentId: number | null,
    kind: SnapshotKind,
    labels: string,
    now: number,
  ): number {
    const r = this.#prepare(
      "INSERT INTO snapshots (key, parent_id, kind, labels, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
    ).run(key, parentId, kind, labels, now, now);
    return Number(r.lastInsertRowid);
  }

  commit(id: number, name: string, labels: string, usage: SnapshotUsage, now: number): void {
    this.#prepare(
      "UPDATE snapshots SET key = ?, kind = 'committed', labels = ?, size = ?, inodes = ?, updated_at = ? WHERE id = ?",
    ).run(name, labels, usage.size, usage.inodes, now, id);
  }

  setLabels(id: number, labels: string, now: number): void {
    this.#prepare("UPDATE snapshots SET labels = ?, updated_at = ? WHERE id = ?").run(
      labels,
      now,
      id,
    );
  }

  setUsage(id: number, usage: SnapshotUsage): void {
    this.#prepare("UPDATE snapshots SET size = ?, inodes = ? WHERE id = ?").run(
      usage.size,
      usage.inodes,
      id,
    );
  }

  delete(id: number): void {
    this.#prepare("DELETE FROM snapshots WHERE id = ?").run(id);
  }

  /** The public description of a row. */
  info(row: SnapshotRow): SnapshotInfo {
    const info: SnapshotInfo = {
      name: row.key,
      kind: row.kind,
      labels: JSON.parse(row.labels) as Record<string, string>,
      createdAt: new Date(row.created_at),
      updatedAt: new Date(row.updated_at),
    };
    if (row.parent_id !== null) {
      const parent = this.byId(row.parent_id);
      if (parent) info.parent = parent.key;
    }
    return info;
  }

  close(): void {
    this.#statements.clear();
    this.#db.close();
  }
}
