/**
 * Internal to images/metadata: the SQLite handle with cached statements,
 * transactions (nested ones become savepoints), the schema migrations, and
 * the row codecs the record stores share.
 *
 * @module
 */

import { DatabaseSync, type SQLInputValue } from "node:sqlite";
import { FailedPrecondition, Internal, InvalidArgument } from "../../errors.ts";
import { validateIdentifier, validateLabels } from "./validate.ts";

/** One schema migration: `sql` takes the database from `version - 1` to `version`. */
export interface Migration {
  version: number;
  description: string;
  sql: string;
}

/**
 * The schema, as an ordered list of migrations. Append only: a released
 * migration is never edited; a change is a new entry.
 */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: "namespaces, images, containers, leases, content and snapshot records",
    sql: `
      CREATE TABLE namespaces (
        name TEXT PRIMARY KEY,
        labels TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
      ) STRICT;
      CREATE TABLE images (
        namespace TEXT NOT NULL REFERENCES namespaces(name),
        name TEXT NOT NULL,
        target TEXT NOT NULL,
        labels TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (namespace, name)
      ) STRICT;
      CREATE TABLE containers (
        namespace TEXT NOT NULL REFERENCES namespaces(name),
        id TEXT NOT NULL,
        image TEXT,
        snapshotter TEXT,
        snapshot_key TEXT,
        spec TEXT NOT NULL,
        runtime_name TEXT NOT NULL,
        runtime_options TEXT,
        labels TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (namespace, id)
      ) STRICT;
      CREATE TABLE leases (
        namespace TEXT NOT NULL REFERENCES namespaces(name),
        id TEXT NOT NULL,
        labels TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (namespace, id)
      ) STRICT;
      CREATE TABLE lease_resources (
        namespace TEXT NOT NULL,
        lease TEXT NOT NULL,
        type TEXT NOT NULL CHECK (type IN ('content', 'snapshot', 'ingest')),
        snapshotter TEXT NOT NULL DEFAULT '',
        id TEXT NOT NULL,
        PRIMARY KEY (namespace, lease, type, snapshotter, id),
        FOREIGN KEY (namespace, lease) REFERENCES leases(namespace, id) ON DELETE CASCADE
      ) STRICT;
      CREATE TABLE content (
        namespace TEXT NOT NULL REFERENCES namespaces(name),
        digest TEXT NOT NULL,
        labels TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (namespace, digest)
      ) STRICT;
      CREATE INDEX content_by_digest ON content(digest);
      CREATE TABLE ingests (
        namespace TEXT NOT NULL REFERENCES namespaces(name),
        ref TEXT NOT NULL,
        backend_ref TEXT NOT NULL UNIQUE,
        expected TEXT,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (namespace, ref)
      ) STRICT;
      CREATE TABLE snapshots (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        namespace TEXT NOT NULL REFERENCES namespaces(name),
        snapshotter TEXT NOT NULL,
        key TEXT NOT NULL,
        backend_key TEXT NOT NULL,
        parent TEXT,
        kind TEXT NOT NULL CHECK (kind IN ('active', 'view', 'committed')),
        labels TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        UNIQUE (namespace, snapshotter, key),
        UNIQUE (snapshotter, backend_key)
      ) STRICT;
      CREATE INDEX snapshots_by_parent ON snapshots(namespace, snapshotter, parent);
    `,
  },
];

/** The schema version this tug writes. */
export const SCHEMA_VERSION: number = MIGRATIONS[MIGRATIONS.length - 1]!.version;

type Row = Record<string, unknown>;

/**
 * SQLite's page cache for the connection, in KiB (its default is 2000). The
 * database is a few hundred KiB after a pull and fleets of containers, and a
 * page that misses is a read from the kernel's page cache: the daemon's idle
 * RSS after the benchmark's work was 0.5-0.8 MiB lower with 256 KiB.
 */
const PAGE_CACHE_KIB = 256;

/** The SQLite handle and the helpers every record store uses. */
export class Sql {
  readonly db: DatabaseSync;
  readonly now: () => Date;
  #statements = new Map<string, ReturnType<DatabaseSync["prepare"]>>();
  #depth = 0;

  constructor(path: string, now: () => Date) {
    this.now = now;
    try {
      this.db = new DatabaseSync(path);
    } catch (err) {
      throw new Internal(`Open metadata database ${path}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    try {
      this.db.exec("PRAGMA busy_timeout = 5000");
      this.db.exec(`PRAGMA cache_size = -${PAGE_CACHE_KIB}`);
      const mode = this.get<{ journal_mode: string }>("PRAGMA journal_mode = WAL");
      if (path !== ":memory:" && mode?.journal_mode !== "wal") {
        throw new Internal(
          `Open metadata database ${path}: cannot switch to WAL mode (got ${mode?.journal_mode})`,
        );
      }
      this.db.exec("PRAGMA foreign_keys = ON");
      this.db.exec("PRAGMA synchronous = FULL");
      this.#migrate(path);
    } catch (err) {
      this.db.close();
      throw err;
    }
  }

  #migrate(path: string): void {
    const current = this.version();
    if (current > SCHEMA_VERSION) {
      throw new FailedPrecondition(
        `Open metadata database ${path}: its schema version ${current} is newer than this tug supports (${SCHEMA_VERSION}); upgrade tug`,
      );
    }
    for (const m of MIGRATIONS) {
      if (m.version <= current) continue;
      this.tx(() => {
        this.db.exec(m.sql);
        this.db.exec(`PRAGMA user_version = ${m.version}`);
      });
    }
  }

  /** The schema version recorded in the database file. */
  version(): number {
    return this.get<{ user_version: number }>("PRAGMA user_version")!.user_version;
  }

  #prepare(sql: string) {
    let st = this.#statements.get(sql);
    if (!st) {
      st = this.db.prepare(sql);
      this.#statements.set(sql, st);
    }
    return st;
  }

  get<T = Row>(sql: string, ...params: SQLInputValue[]): T | undefined {
    return this.#prepare(sql).get(...params) as T | undefined;
  }

  all<T = Row>(sql: string, ...params: SQLInputValue[]): T[] {
    return this.#prepare(sql).all(...params) as T[];
  }

  run(sql: string, ...params: SQLInputValue[]): number {
    return Number(this.#prepare(sql).run(...params).changes);
  }

  /**
   * Runs `fn` in one transaction (a savepoint when nested) and commits, or
   * rolls back everything when it throws. `fn` must be synchronous.
   */
  tx<T>(fn: () => T): T {
    const savepoint = `sp${this.#depth}`;
    this.db.exec(this.#depth === 0 ? "BEGIN IMMEDIATE" : `SAVEPOINT ${savepoint}`);
    this.#depth++;
    let result: T;
    try {
      result = fn();
      if (result instanceof Promise) {
        throw new Internal("A metadata transaction must be synchronous");
      }
    } catch (err) {
      this.#depth--;
      this.db.exec(
        this.#depth === 0 ? "ROLLBACK" : `ROLLBACK TO ${savepoint}; RELEASE ${savepoint}`,
      );
      throw err;
    }
    this.#depth--;
    this.db.exec(this.#depth === 0 ? "COMMIT" : `RELEASE ${savepoint}`);
    return result;
  }

  /** Creates namespace `name` when it does not exist yet (objects create their namespace implicitly). */
  ensureNamespace(name: string): void {
    validateIdentifier("namespace", name);
    const now = this.now().getTime();
    this.run(
      "INSERT OR IGNORE INTO namespaces (name, labels, created_at, updated_at) VALUES (?, '{}', ?, ?)",
      name,
      now,
      now,
    );
  }

  close(): void {
    this.#statements.clear();
    this.db.close();
  }
}

/** Encodes labels for a TEXT column, after validating them. */
export function encodeLabels(labels: Record<string, string> | undefined): string {
  const l = labels ?? {};
  if (typeof l !== "object" || l === null || Array.isArray(l)) {
    throw new InvalidArgument("Invalid labels: not an object");
  }
  validateLabels(l);
  return JSON.stringify(l);
}

/** Decodes a labels column. */
export function decodeLabels(text: unknown): Record<string, string> {
  return JSON.parse(String(text)) as Record<string, string>;
}

/** A Date from a millisecond column. */
export function date(ms: unknown): Date {
  return new Date(Number(ms));
}

/** True when `err` is SQLite's constraint violation for a duplicate key. */
export function isUniqueViolation(err: unknown): boolean {
  return err instanceof Error && /UNIQUE constraint failed|PRIMARY KEY/.test(err.message);
}

/** True when `err` is SQLite's foreign-key violation. */
export function isForeignKeyViolation(err: unknown): boolean {
  return err instanceof Error && /FOREIGN KEY constraint failed/.test(err.message);
}
