/**
 * Image records: in a namespace, a name (a normalized reference such as
 * `docker.io/library/busybox:latest`) points to a target descriptor (an index
 * or a manifest in the content store), with labels and timestamps.
 *
 * @module
 */

import { AlreadyExists, InvalidArgument, NotFound } from "../../errors.ts";
import type { Descriptor } from "../types.ts";
import { date, decodeLabels, encodeLabels, type Sql } from "./_sql.ts";
import { validateDescriptor } from "./validate.ts";

/** An image record. */
export interface Image {
  name: string;
  target: Descriptor;
  labels: Record<string, string>;
  createdAt: Date;
  updatedAt: Date;
}

/** The fields a caller gives to create an image record. */
export interface ImageInput {
  name: string;
  target: Descriptor;
  labels?: Record<string, string>;
}

/** A change to an image record: the fields given are replaced, the others kept. */
export interface ImageUpdate {
  name: string;
  target?: Descriptor;
  labels?: Record<string, string>;
}

interface ImageRow {
  name: string;
  target: string;
  labels: string;
  created_at: number;
  updated_at: number;
}

function toImage(row: ImageRow): Image {
  return {
    name: row.name,
    target: JSON.parse(row.target) as Descriptor,
    labels: decodeLabels(row.labels),
    createdAt: date(row.created_at),
    updatedAt: date(row.updated_at),
  };
}

function validateName(name: string): void {
  if (typeof name !== "string" || name === "") {
    throw new InvalidArgument("Invalid image name: must not be empty");
  }
  // deno-lint-ignore no-control-regex
  if (/[\s\x00-\x1f]/.test(name)) {
    throw new InvalidArgument(
      `Invalid image name ${JSON.stringify(name)}: contains whitespace or control characters`,
    );
  }
}

/**
 * Throws InvalidArgument when `name` carries a digest (`repo@sha256:…`) that
 * is not the digest of `target`: such a name would promise content it does not
 * point at (Docker refuses digest names for tags and loads outright).
 */
export function validateNameTarget(name: string, target: Descriptor): void {
  const at = name.lastIndexOf("@");
  if (at < 0) return;
  const digest = name.slice(at + 1);
  if (digest !== target.digest) {
    throw new InvalidArgument(
      `Invalid image name ${name}: it names digest ${digest}, but the image's digest is ${target.digest}`,
    );
  }
}

function encodeTarget(target: Descriptor): string {
  validateDescriptor(target);
  return JSON.stringify(target);
}

/** Image records, per namespace. */
export class ImageStore {
  #sql: Sql;

  /** Internal: use `MetadataStore.images`. */
  constructor(sql: Sql) {
    this.#sql = sql;
  }

  /** The image `name` in `namespace`; throws NotFound. */
  get(namespace: string, name: string): Image {
    const row = this.#sql.get<ImageRow>(
      "SELECT * FROM images WHERE namespace = ? AND name = ?",
      namespace,
      name,
    );
    if (!row) throw new NotFound(`Get image ${name}: not found in namespace ${namespace}`);
    return toImage(row);
  }

  /** The images of `namespace`, by name. */
  list(namespace: string): Image[] {
    return this.#sql.all<ImageRow>(
      "SELECT * FROM images WHERE namespace = ? ORDER BY name",
      namespace,
    ).map(toImage);
  }

  /** Records a new image; throws AlreadyExists when the name is taken in `namespace`. */
  create(namespace: string, image: ImageInput): Image {
    validateName(image.name);
    const target = encodeTarget(image.target);
    validateNameTarget(image.name, image.target);
    const labels = encodeLabels(image.labels);
    return this.#sql.tx(() => {
      this.#sql.ensureNamespace(namespace);
      if (
        this.#sql.get(
          "SELECT 1 FROM images WHERE namespace = ? AND name = ?",
          namespace,
          image.name,
        )
      ) {
        throw new AlreadyExists(
          `Create image ${image.name}: it exists already in namespace ${namespace}`,
        );
      }
      const now = this.#sql.now().getTime();
      this.#sql.run(
        "INSERT INTO images (namespace, name, target, labels, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
        namespace,
        image.name,
        target,
        labels,
        now,
        now,
      );
      return this.get(namespace, image.name);
    });
  }

  /** Changes the target and/or labels of an existing image; throws NotFound. */
  update(namespace: string, update: ImageUpdate): Image {
    const target = update.target === undefined ? undefined : encodeTarget(update.target);
    if (update.target !== undefined) validateNameTarget(update.name, update.target);
    const labels = update.labels === undefined ? undefined : encodeLabels(update.labels);
    return this.#sql.tx(() => {
      const old = this.get(namespace, update.name);
      this.#sql.run(
        "UPDATE images SET target = ?, labels = ?, updated_at = ? WHERE namespace = ? AND name = ?",
        target ?? JSON.stringify(old.target),
        labels ?? JSON.stringify(old.labels),
        this.#sql.now().getTime(),
        namespace,
        update.name,
      );
      return this.get(namespace, update.name);
    });
  }

  /** Creates the image, or points the existing one at the new target and labels (a re-pull). */
  put(namespace: string, image: ImageInput): Image {
    return this.#sql.tx(() => {
      const exists = this.#sql.get(
        "SELECT 1 FROM images WHERE namespace = ? AND name = ?",
        namespace,
        image.name,
      );
      return exists
        ? this.update(namespace, {
          name: image.name,
          target: image.target,
          labels: image.labels ?? {},
        })
        : this.create(namespace, image);
    });
  }

  /** Removes the image record (not its content: garbage collection does that); throws NotFound. */
  delete(namespace: string, name: string): void {
    const changed = this.#sql.run(
      "DELETE FROM images WHERE namespace = ? AND name = ?",
      namespace,
      name,
    );
    if (changed === 0) {
      throw new NotFound(`Remove image ${name}: not found in namespace ${namespace}`);
    }
  }
}
