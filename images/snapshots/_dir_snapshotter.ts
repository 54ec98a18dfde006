/**
 * Internal to images/snapshots: what the overlayfs and native snapshotters
 * share. Each snapshot is a directory `<root>/snapshots/<id>/` holding `fs/`
 * (its tree: the upper layer for overlayfs, the whole tree for native) and,
 * for overlayfs, `work/`; the metadata is in `<root>/metadata.db`.
 *
 * A snapshot directory is built under a temporary name (`new-…`) and renamed
 * to its id inside the transaction that records it; a removed one is renamed
 * to `rm-<id>` inside the transaction that forgets it, then deleted. Whatever
 * a crash leaves behind (a `new-…` or `rm-…` directory, an id the database
 * does not know) is deleted the next time the snapshotter is opened.
 *
 * @module
 */

import { join } from "../../util/path.ts";
import { AlreadyExists, FailedPrecondition, InvalidArgument, NotFound } from "../../errors.ts";
import type { Mount, SnapshotInfo, SnapshotKind, Snapshotter, SnapshotUsage } from "../types.ts";
import { encodeLabels, type SnapshotRow, SnapshotStore } from "./_store.ts";

/** Disk usage of a tree: 512-byte blocks of every distinct inode, and the count of distinct inodes. */
export function diskUsage(dir: string): SnapshotUsage {
  const seen = new Set<string>();
  let size = 0;
  const visit = (path: string, info: Deno.FileInfo) => {
    const id = `${info.dev}:${info.ino}`;
    if (seen.has(id)) return;
    seen.add(id);
    size += (info.blocks ?? 0) * 512;
    if (!info.isDirectory) return;
    for (const e of Deno.readDirSync(path)) {
      const p = join(path, e.name);
      visit(p, Deno.lstatSync(p));
    }
  };
  visit(dir, Deno.lstatSync(dir));
  return { size, inodes: seen.size };
}

function validateKey(what: string, key: string): void {
  if (typeof key !== "string" || key === "") {
    throw new InvalidArgument(`Invalid snapshot ${what}: must not be empty`);
  }
  if (key.includes("\0")) {
    throw new InvalidArgument(
      `Invalid snapshot ${what} ${JSON.stringify(key)}: contains a NUL byte`,
    );
  }
}

function q(s: string): string {
  return JSON.stringify(s);
}

/** Runs `fn` and hands back its result or its error as a promise (never throws synchronously). */
function promised<T>(fn: () => T): Promise<T> {
  try {
    return Promise.resolve(fn());
  } catch (err) {
    return Promise.reject(err);
  }
}

/** A snapshotter whose snapshots are directories (see the module documentation). */
export abstract class DirSnapshotter implements Snapshotter {
  abstract readonly name: string;
  /** The snapshotter's root directory. */
  readonly root: string;
  readonly #store: SnapshotStore;
  #closed = false;

  protected constructor(root: string) {
    this.root = root;
    Deno.mkdirSync(join(root, "snapshots"), { recursive: true, mode: 0o700 });
    this.#store = new SnapshotStore(join(root, "metadata.db"));
    this.#cleanup();
  }

  /** The directory of snapshot `id`. */
  protected dir(id: number): string {
    return join(this.root, "snapshots", String(id));
  }

  /** The tree of snapshot `id`. */
  protected fs(id: number): string {
    return join(this.dir(id), "fs");
  }

  /** Fills a new snapshot's directory `dir` (its `fs/` exists, empty); `parent` is the parent's id. */
  protected abstract populate(
    dir: string,
    parent: number | undefined,
    kind: SnapshotKind,
  ): Promise<void>;

  /** The mounts of a snapshot, given the ids of its ancestors (nearest first). */
  protected abstract mountsOf(row: SnapshotRow, ancestors: number[]): Mount[];

  #cleanup(): void {
    const known = new Set(this.#store.all().map((r) => String(r.id)));
    for (const e of Deno.readDirSync(join(this.root, "snapshots"))) {
      if (known.has(e.name)) continue;
      Deno.removeSync(join(this.root, "snapshots", e.name), { recursive: true });
    }
  }

  #open(): SnapshotStore {
    if (this.#closed) {
      throw new FailedPrecondition(`Snapshotter ${this.name} at ${q(this.root)} is closed`);
    }
    return this.#store;
  }

  #row(key: string): SnapshotRow {
    validateKey("key", key);
    const row = this.#open().get(key);
    if (!row) throw new NotFound(`Snapshot ${q(key)} does not exist`);
    return row;
  }

  #mounts(row: SnapshotRow): Mount[] {
    return this.mountsOf(row, this.#store.chain(row.id).slice(1));
  }

  /** Checks that `key` is free and `parent` committed; returns the parent's row. */
  #checkNew(key: string, parent: string | undefined): SnapshotRow | undefined {
    const store = this.#open();
    if (store.get(key)) throw new AlreadyExists(`Snapshot ${q(key)} already exists`);
    if (parent === undefined || parent === "") return undefined;
    const p = store.get(parent);
    if (!p) {
      throw new NotFound(`Cannot create snapshot ${q(key)}: parent ${q(parent)} does not exist`);
    }
    if (p.kind !== "committed") {
      throw new FailedPrecondition(
        `Cannot create snapshot ${q(key)}: parent ${q(parent)} is ${p.kind}, not committed`,
      );
    }
    return p;
  }

  async #create(
    kind: SnapshotKind,
    key: string,
    parent: string | undefined,
    labels?: Record<string, string>,
  ): Promise<Mount[]> {
    validateKey("key", key);
    if (parent !== undefined && parent !== "") validateKey("parent", parent);
    const encoded = encodeLabels(labels);
    const p = this.#checkNew(key, parent);
    const temp = Deno.makeTempDirSync({ dir: join(this.root, "snapshots"), prefix: "new-" });
    try {
      Deno.mkdirSync(join(temp, "fs"), { mode: 0o755 });
      Deno.chmodSync(join(temp, "fs"), 0o755);
      await this.populate(temp, p?.id, kind);
      const store = this.#open();
      const row = store.tx(() => {
        const again = this.#checkNew(key, parent);
        const id = store.insert(key, again?.id ?? null, kind, encoded, Date.now());
        Deno.renameSync(temp, this.dir(id));
        return store.byId(id)!;
      });
      return this.#mounts(row);
    } catch (err) {
      try {
        Deno.removeSync(temp, { recursive: true });
      } catch {
        // renamed into place already: the next open removes what the database does not know
      }
      throw err;
    }
  }

  prepare(
    key: string,
    parent?: string,
    options: { labels?: Record<string, string> } = {},
  ): Promise<Mount[]> {
    return this.#create("active", key, parent, options.labels);
  }

  view(
    key: string,
    parent?: string,
    options: { labels?: Record<string, string> } = {},
  ): Promise<Mount[]> {
    return this.#create("view", key, parent, options.labels);
  }

  mounts(key: string): Promise<Mount[]> {
    return promised(() => this.#mounts(this.#row(key)));
  }

  commit(
    name: string,
    key: string,
    options: { labels?: Record<string, string> } = {},
  ): Promise<void> {
    return promised(() => this.#commit(name, key, options.labels));
  }

  #commit(name: string, key: string, newLabels: Record<string, string> | undefined): void {
    validateKey("name", name);
    const row = this.#row(key);
    if (row.kind !== "active") {
      throw new FailedPrecondition(
        `Cannot commit snapshot ${q(key)}: it is ${row.kind}, not active`,
      );
    }
    const labels = newLabels === undefined ? row.labels : encodeLabels(newLabels);
    const usage = diskUsage(this.fs(row.id));
    const store = this.#open();
    store.tx(() => {
      const again = store.get(key);
      if (!again || again.id !== row.id || again.kind !== "active") {
        throw new FailedPrecondition(`Cannot commit snapshot ${q(key)}: it changed meanwhile`);
      }
      if (store.get(name)) {
        throw new AlreadyExists(`Cannot commit snapshot ${q(key)}: ${q(name)} already exists`);
      }
      store.commit(row.id, name, labels, usage, Date.now());
    });
  }

  async remove(key: string): Promise<void> {
    const doomed = await promised(() => this.#forget(key));
    // Left behind on failure: the next open deletes it.
    await Deno.remove(doomed, { recursive: true }).catch(() => {});
  }

  /** Forgets snapshot `key` and moves its directory aside; returns where it went. */
  #forget(key: string): string {
    const row = this.#row(key);
    const store = this.#open();
    const doomed = join(this.root, "snapshots", `rm-${row.id}`);
    store.tx(() => {
      const children = store.children(row.id);
      if (children > 0) {
        throw new FailedPrecondition(
          `Cannot remove snapshot ${q(key)}: ${children} snapshot${children === 1 ? "" : "s"} use${
            children === 1 ? "s" : ""
          } it as parent`,
        );
      }
      store.delete(row.id);
      try {
        Deno.renameSync(this.dir(row.id), doomed);
      } catch (err) {
        if (!(err instanceof Deno.errors.NotFound)) throw err;
      }
    });
    return doomed;
  }

  stat(key: string): Promise<SnapshotInfo> {
    return promised(() => this.#store.info(this.#row(key)));
  }

  update(info: Pick<SnapshotInfo, "name" | "labels">): Promise<SnapshotInfo> {
    return promised(() => {
      const row = this.#row(info.name);
      const labels = encodeLabels(info.labels);
      const store = this.#open();
      store.setLabels(row.id, labels, Date.now());
      return store.info(store.byId(row.id)!);
    });
  }

  usage(key: string): Promise<SnapshotUsage> {
    return promised(() => {
      const row = this.#row(key);
      if (row.kind === "committed" && row.size !== null && row.inodes !== null) {
        return { size: row.size, inodes: row.inodes };
      }
      const usage = diskUsage(this.fs(row.id));
      if (row.kind === "committed") this.#open().setUsage(row.id, usage);
      return usage;
    });
  }

  async walk(fn: (info: SnapshotInfo) => void | Promise<void>): Promise<void> {
    const store = this.#open();
    for (const row of store.all()) await fn(store.info(row));
  }

  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#store.close();
    }
    return Promise.resolve();
  }
}
