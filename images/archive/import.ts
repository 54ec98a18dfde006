/**
 * Import of image archives into a content store: an OCI image layout as a tar
 * (`oci-layout`, `index.json`, `blobs/<alg>/<hex>`; what `skopeo copy …
 * oci-archive:`, `ctr images export` and docker 25+ write) or a `docker save`
 * tar (`manifest.json`, `<id>.json` configs, `<dir>/layer.tar` or
 * `<hex>.tar` layers, `repositories`; what `skopeo copy … docker-archive:`
 * and older docker write), optionally gzip- or zstd-compressed as a whole.
 *
 * The archive is read once, as a stream: files larger than 1 MiB go straight
 * into the content store while their digest is computed, smaller ones are
 * held in memory until the archive's index says what they are. Every blob
 * named `blobs/<alg>/<hex>` is verified against its name.
 *
 * A `docker save` image becomes an OCI manifest (`application/vnd.oci.image.manifest.v1+json`)
 * written by the importer, with the config as `application/vnd.oci.image.config.v1+json`
 * and each layer stored as it is in the archive: uncompressed layers as
 * `application/vnd.oci.image.layer.v1.tar` (their digest is then their diff ID,
 * which is checked against the config), gzip or zstd ones (detected from their
 * first bytes) as `…tar+gzip` / `…tar+zstd`. Storing as-is keeps the import a
 * single pass with no recompression; the cost is disk space for uncompressed
 * layers, which `docker save` archives have anyway.
 *
 * Nothing is half-imported: on any error, the blobs this import added are
 * deleted again and no image is returned.
 *
 * @module
 */

import { AlreadyExists, InvalidArgument, NotFound } from "../../errors.ts";
import { Digester, digestOf, parseDigest } from "../content/digest.ts";
import { formatReference, parseReference } from "../registry/reference.ts";
import {
  type ContentStore,
  type Descriptor,
  type Digest,
  IMPORT_INGEST_PREFIX,
  MEDIA_TYPES,
} from "../types.ts";
import { concat } from "../../util/bytes.ts";
import { decompressed, detectCompression, readTar } from "./_tar.ts";

/** An image found in an archive: the name to record and the descriptor it points to. */
export interface ImportedImage {
  name: string;
  target: Descriptor;
}

/** Options for {@link importArchive}. */
export interface ImportOptions {
  /** Where the blobs go (usually a namespace's view, with a lease held during the import). */
  content: ContentStore;
  /**
   * The name to give the image, overriding the names in the archive; only
   * for an archive of one image.
   */
  name?: string;
}

/** The format an archive was recognised as. */
export type ArchiveFormat = "oci" | "docker";

/** What {@link importArchive} found and stored. */
export interface ImportResult {
  format: ArchiveFormat;
  images: ImportedImage[];
  /** Blobs added to the content store by this import (others were there already). */
  added: Digest[];
}

/** Files up to this size are held in memory until the archive's index says what they are. */
const SMALL = 1 << 20;
/** The most bytes of small files held in memory at once. */
const MAX_BUFFERED = 64 << 20;
/** The largest index, manifest or config the importer parses. */
const MAX_JSON = 8 << 20;

const NAME_ANNOTATION = "io.containerd.image.name";
const REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name";

type FileRec =
  | { kind: "memory"; data: Uint8Array; digest: Digest }
  | { kind: "stored"; digest: Digest; size: number; head: Uint8Array };

/**
 * Imports the archive read from `input` into `options.content` and returns
 * the images it names (the caller records them). Throws InvalidArgument,
 * naming the file, for a malformed archive; nothing stays behind.
 */
export async function importArchive(
  input: ReadableStream<Uint8Array>,
  options: ImportOptions,
): Promise<ImportResult> {
  const importer = new Importer(options.content);
  try {
    const { stream } = await decompressed(input);
    await importer.read(stream);
    const result = await importer.finish(options.name);
    return result;
  } catch (err) {
    await importer.rollback();
    throw err;
  }
}

function fail(message: string, cause?: unknown): InvalidArgument {
  return new InvalidArgument(
    `Import archive: ${message}`,
    cause === undefined ? undefined : { cause },
  );
}

/** The archive path of `name`, or an error when it is absolute or climbs out with `..`. */
function cleanPath(name: string): string {
  if (name.includes("\0")) {
    throw fail(`entry ${JSON.stringify(name)} has a hostile path (a NUL byte)`);
  }
  if (name.startsWith("/")) {
    throw fail(`entry ${JSON.stringify(name)} has a hostile path (absolute)`);
  }
  const parts: string[] = [];
  for (const part of name.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      throw fail(`entry ${JSON.stringify(name)} has a hostile path (a ".." component)`);
    }
    parts.push(part);
  }
  return parts.join("/");
}

/** Resolves a link target relative to the directory of `from`, refusing escapes. */
function resolveLink(from: string, target: string, symbolic: boolean): string {
  if (target.startsWith("/")) {
    throw fail(`link ${JSON.stringify(from)} points outside the archive (${target})`);
  }
  const base = symbolic ? from.split("/").slice(0, -1) : [];
  for (const part of target.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      if (base.length === 0) {
        throw fail(`link ${JSON.stringify(from)} points outside the archive (${target})`);
      }
      base.pop();
    } else base.push(part);
  }
  return base.join("/");
}

function parseJson(what: string, data: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(data));
  } catch (err) {
    throw fail(`${what} is not valid JSON: ${(err as Error).message}`, err);
  }
}

function normalizeName(name: string, source: string): string {
  try {
    return formatReference(parseReference(name));
  } catch (err) {
    throw fail(
      `${source} names the image ${JSON.stringify(name)}, which is not a valid reference`,
      err,
    );
  }
}

const BLOB_PATH = /^blobs\/(sha256|sha512)\/([0-9a-f]+)$/;

class Importer {
  #content: ContentStore;
  #files = new Map<string, FileRec>();
  #links = new Map<string, string>();
  #buffered = 0;
  #added = new Set<Digest>();
  #openIngests = new Set<string>();
  #referenced = new Set<Digest>();

  constructor(content: ContentStore) {
    this.#content = content;
  }

  async read(stream: ReadableStream<Uint8Array>): Promise<void> {
    let entries = 0;
    for await (const { header, body } of readTar(stream)) {
      entries++;
      const path = cleanPath(header.name);
      switch (header.type) {
        case "directory":
          continue;
        case "symlink":
        case "link":
          this.#links.set(path, resolveLink(path, header.linkname, header.type === "symlink"));
          continue;
        case "file":
        case "contiguous-file":
          break;
        default:
          throw fail(
            `entry ${
              JSON.stringify(header.name)
            } is a ${header.type}, which image archives do not hold`,
          );
      }
      if (path === "") continue;
      const blob = BLOB_PATH.exec(path);
      const expected = blob ? `${blob[1]}:${blob[2]}` : undefined;
      if (expected !== undefined) {
        try {
          parseDigest(expected);
        } catch (err) {
          throw fail(`${path} is not named by a valid digest`, err);
        }
      }
      if (header.size <= SMALL) {
        this.#buffered += header.size;
        if (this.#buffered > MAX_BUFFERED) {
          throw fail(
            `more than ${MAX_BUFFERED} bytes of small files; this is not an image archive`,
          );
        }
        const parts: Uint8Array[] = [];
        for await (const chunk of body) parts.push(chunk);
        const data = concat(parts);
        const algorithm = expected ? parseDigest(expected).algorithm : "sha256";
        const digest = digestOf(data, algorithm);
        if (expected !== undefined && digest !== expected) {
          throw fail(`digest mismatch in ${path}: its content is ${digest}`);
        }
        this.#files.set(path, { kind: "memory", data, digest });
      } else {
        this.#files.set(path, await this.#store(path, body, { size: header.size, expected }));
      }
    }
    if (entries === 0) throw fail("the archive is empty");
  }

  /** Streams a file into the content store. */
  async #store(
    path: string,
    body: AsyncIterable<Uint8Array>,
    args: { size: number; expected: Digest | undefined },
  ): Promise<FileRec> {
    const ref = `${IMPORT_INGEST_PREFIX}${crypto.randomUUID()}`;
    const head: Uint8Array[] = [];
    let headSize = 0;
    const keepHead = (chunk: Uint8Array) => {
      if (headSize < 16) {
        head.push(chunk.subarray(0, 16 - headSize));
        headSize += Math.min(chunk.length, 16 - headSize);
      }
    };
    let writer;
    try {
      writer = await this.#content.writer(ref, {
        total: args.size,
        ...(args.expected !== undefined ? { expected: args.expected } : {}),
      });
    } catch (err) {
      if (!(err instanceof AlreadyExists) || args.expected === undefined) throw err;
      // In the store already: skip the bytes, but keep the first ones to know the file's compression.
      for await (const chunk of body) keepHead(chunk);
      return { kind: "stored", digest: args.expected, size: args.size, head: concat(head) };
    }
    this.#openIngests.add(ref);
    const algorithm = args.expected ? parseDigest(args.expected).algorithm : "sha256";
    const digester = new Digester(algorithm);
    let size = 0;
    try {
      for await (const chunk of body) {
        keepHead(chunk);
        digester.update(chunk);
        size += chunk.length;
        await writer.write(chunk);
      }
      const digest = digester.digest();
      if (args.expected !== undefined && digest !== args.expected) {
        throw fail(`digest mismatch in ${path}: its content is ${digest}`);
      }
      try {
        await writer.commit(size, digest);
        this.#added.add(digest);
      } catch (err) {
        if (!(err instanceof AlreadyExists)) throw err;
      }
      this.#openIngests.delete(ref);
      return { kind: "stored", digest, size, head: concat(head) };
    } finally {
      await writer.close().catch(() => {});
    }
  }

  /** The file at `path` (following links), or undefined. */
  #file(path: string): FileRec | undefined {
    let p = cleanPath(path);
    for (let i = 0; i < 16; i++) {
      const f = this.#files.get(p);
      if (f) return f;
      const next = this.#links.get(p);
      if (next === undefined) return undefined;
      p = next;
    }
    throw fail(`${path} is a loop of links`);
  }

  /** Makes sure `file` is in the content store; returns its descriptor parts. */
  async #commit(file: FileRec): Promise<{ digest: Digest; size: number }> {
    if (file.kind === "stored") {
      this.#referenced.add(file.digest);
      return { digest: file.digest, size: file.size };
    }
    this.#referenced.add(file.digest);
    const ref = `${IMPORT_INGEST_PREFIX}${crypto.randomUUID()}`;
    try {
      const w = await this.#content.writer(ref, { expected: file.digest, total: file.data.length });
      this.#openIngests.add(ref);
      try {
        await w.write(file.data);
        await w.commit(file.data.length, file.digest);
        this.#added.add(file.digest);
        this.#openIngests.delete(ref);
      } finally {
        await w.close().catch(() => {});
      }
    } catch (err) {
      if (!(err instanceof AlreadyExists)) throw err;
    }
    return { digest: file.digest, size: file.data.length };
  }

  /** The bytes of `file` (from memory, or read back from the store). */
  async #bytes(file: FileRec, what: string): Promise<Uint8Array> {
    if (file.kind === "memory") return file.data;
    if (file.size > MAX_JSON) {
      throw fail(`${what} is ${file.size} bytes, too large to be what it claims`);
    }
    return await this.#content.readBytes(file.digest);
  }

  /** The bytes of blob `desc`, from the archive or from the store; undefined when in neither. */
  async #blob(
    desc: Descriptor,
    what: string,
  ): Promise<{ file?: FileRec; bytes?: () => Promise<Uint8Array> } | undefined> {
    const { algorithm, hex } = parseDigest(desc.digest);
    const file = this.#file(`blobs/${algorithm}/${hex}`);
    if (file) {
      const size = file.kind === "memory" ? file.data.length : file.size;
      if (size !== desc.size) {
        throw fail(
          `blobs/${algorithm}/${hex} (${what}) is ${size} bytes, but its descriptor says ${desc.size}`,
        );
      }
      return { file, bytes: () => this.#bytes(file, what) };
    }
    try {
      const info = await this.#content.info(desc.digest);
      if (info.size !== desc.size) {
        throw fail(
          `${desc.digest} (${what}) is ${info.size} bytes in the store, but its descriptor says ${desc.size}`,
        );
      }
      this.#referenced.add(desc.digest);
      return { bytes: () => this.#content.readBytes(desc.digest) };
    } catch (err) {
      if (err instanceof NotFound) return undefined;
      throw err;
    }
  }

  async finish(name: string | undefined): Promise<ImportResult> {
    let format: ArchiveFormat;
    let found: Array<{ target: Descriptor; names: string[] }>;
    if (this.#file("index.json")) {
      format = "oci";
      found = await this.#oci();
    } else if (this.#file("manifest.json")) {
      format = "docker";
      found = await this.#docker();
    } else {
      throw fail(
        "it holds neither index.json (an OCI image layout) nor manifest.json (docker save)",
      );
    }
    if (found.length === 0) throw fail("it holds no image");
    const images: ImportedImage[] = [];
    if (name !== undefined) {
      if (found.length !== 1) {
        throw fail(
          `it holds ${found.length} images; a name can be given only for an archive of one image`,
        );
      }
      images.push({ name: normalizeName(name, "the caller"), target: found[0]!.target });
    } else {
      const byName = new Map<string, Descriptor>();
      for (const { target, names } of found) {
        if (names.length === 0) {
          throw fail(
            `image ${target.digest} has no name in the archive (no ${NAME_ANNOTATION}, ${REF_NAME_ANNOTATION} or RepoTags); give one`,
          );
        }
        for (const n of names) {
          const prev = byName.get(n);
          if (prev && prev.digest !== target.digest) {
            throw fail(
              `the name ${n} is given to two images (${prev.digest} and ${target.digest})`,
            );
          }
          if (!prev) {
            byName.set(n, target);
            images.push({ name: n, target });
          }
        }
      }
    }
    // Drop what the archive held but nothing refers to (e.g. docker's legacy per-layer json files).
    for (const digest of [...this.#added]) {
      if (!this.#referenced.has(digest)) {
        await this.#content.delete(digest).catch(() => {});
        this.#added.delete(digest);
      }
    }
    return { format, images, added: [...this.#added].sort() };
  }

  async #oci(): Promise<Array<{ target: Descriptor; names: string[] }>> {
    const layout = this.#file("oci-layout");
    if (layout) {
      const doc = parseJson("oci-layout", await this.#bytes(layout, "oci-layout")) as {
        imageLayoutVersion?: unknown;
      };
      if (typeof doc !== "object" || doc === null || typeof doc.imageLayoutVersion !== "string") {
        throw fail("oci-layout has no imageLayoutVersion");
      }
      if (!doc.imageLayoutVersion.startsWith("1.")) {
        throw fail(`oci-layout has version ${doc.imageLayoutVersion}; tug reads version 1.x`);
      }
    }
    const indexFile = this.#file("index.json")!;
    const index = parseJson("index.json", await this.#bytes(indexFile, "index.json")) as {
      manifests?: unknown;
    };
    if (typeof index !== "object" || index === null || !Array.isArray(index.manifests)) {
      throw fail("index.json has no manifests list");
    }
    // docker 25+ archives carry both: manifest.json's RepoTags name what index.json leaves unnamed.
    const repoTags = this.#file("manifest.json")
      ? await this.#dockerRepoTags()
      : new Map<string, string[]>();
    const found: Array<{ target: Descriptor; names: string[] }> = [];
    for (const [i, raw] of (index.manifests as unknown[]).entries()) {
      const desc = checkDescriptor(raw, `index.json manifests[${i}]`);
      const config = await this.#walk(desc, `index.json manifests[${i}]`);
      const names: string[] = [];
      const annotations = desc.annotations ?? {};
      if (annotations[NAME_ANNOTATION]) {
        names.push(normalizeName(annotations[NAME_ANNOTATION], `index.json manifests[${i}]`));
      } else if (
        annotations[REF_NAME_ANNOTATION] && /[/:@]/.test(annotations[REF_NAME_ANNOTATION])
      ) {
        names.push(normalizeName(annotations[REF_NAME_ANNOTATION], `index.json manifests[${i}]`));
      } else if (config !== undefined) {
        names.push(...(repoTags.get(config) ?? []));
      }
      const { annotations: _drop, ...target } = desc;
      found.push({ target, names });
    }
    return found;
  }

  /**
   * Checks that `desc` and everything below it are in the archive or the
   * store (an index may lack some platforms' manifests; a manifest lacks
   * nothing), stores them, and labels indexes and manifests with their
   * children (containerd's gc.ref labels). Returns the config digest of a manifest.
   */
  async #walk(desc: Descriptor, what: string, depth = 0): Promise<Digest | undefined> {
    if (depth > 4) throw fail(`${what}: indexes nest too deeply`);
    const found = await this.#blob(desc, what);
    if (!found) {
      throw fail(
        `${what} refers to ${desc.digest}, which is neither in the archive nor in the store`,
      );
    }
    if (found.file) await this.#commit(found.file);
    const isIndex = desc.mediaType === MEDIA_TYPES.ociIndex ||
      desc.mediaType === MEDIA_TYPES.dockerManifestList;
    const isManifest = desc.mediaType === MEDIA_TYPES.ociManifest ||
      desc.mediaType === MEDIA_TYPES.dockerManifest;
    if (!isIndex && !isManifest) return undefined;
    const doc = parseJson(`${desc.digest} (${what})`, await found.bytes!()) as {
      manifests?: unknown;
      config?: unknown;
      layers?: unknown;
    };
    const labels: Record<string, string> = {};
    let config: Digest | undefined;
    if (isIndex) {
      if (!Array.isArray(doc.manifests)) {
        throw fail(`${desc.digest} (${what}) is an index without manifests`);
      }
      let present = 0;
      for (const [i, raw] of doc.manifests.entries()) {
        const child = checkDescriptor(raw, `${desc.digest} manifests[${i}]`);
        if (!(await this.#blob(child, `manifest of ${what}`))) continue; // a platform not in the archive
        await this.#walk(child, `manifests[${i}] of ${what}`, depth + 1);
        labels[`containerd.io/gc.ref.content.m.${i}`] = child.digest;
        present++;
      }
      if (present === 0 && doc.manifests.length > 0) {
        throw fail(`${what} is an index none of whose manifests are in the archive`);
      }
    } else {
      const configDesc = checkDescriptor(doc.config, `${desc.digest} (${what}) config`);
      if (!Array.isArray(doc.layers)) {
        throw fail(`${desc.digest} (${what}) is a manifest without layers`);
      }
      await this.#walk(configDesc, `config of ${what}`, depth + 1);
      labels["containerd.io/gc.ref.content.config"] = configDesc.digest;
      config = configDesc.digest;
      for (const [i, raw] of doc.layers.entries()) {
        const layer = checkDescriptor(raw, `${desc.digest} layers[${i}]`);
        await this.#walk(layer, `layer ${i} of ${what}`, depth + 1);
        labels[`containerd.io/gc.ref.content.l.${i}`] = layer.digest;
      }
    }
    await this.#content.update(desc.digest, labels);
    return config;
  }

  /** manifest.json's RepoTags by config digest (for archives that carry both formats). */
  async #dockerRepoTags(): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>();
    for (const entry of await this.#dockerManifest()) {
      const config = this.#file(entry.Config);
      if (!config) continue;
      out.set(
        config.digest,
        (entry.RepoTags ?? []).map((t) => normalizeName(t, "manifest.json RepoTags")),
      );
    }
    return out;
  }

  async #dockerManifest(): Promise<
    Array<{ Config: string; RepoTags?: string[] | null; Layers: string[] }>
  > {
    const file = this.#file("manifest.json")!;
    const doc = parseJson("manifest.json", await this.#bytes(file, "manifest.json"));
    if (!Array.isArray(doc)) throw fail("manifest.json is not a list of images");
    return doc.map((e, i) => {
      const entry = e as { Config?: unknown; RepoTags?: unknown; Layers?: unknown };
      if (typeof entry !== "object" || entry === null || typeof entry.Config !== "string") {
        throw fail(`manifest.json entry ${i} has no Config`);
      }
      if (!Array.isArray(entry.Layers) || !entry.Layers.every((l) => typeof l === "string")) {
        throw fail(`manifest.json entry ${i} has no Layers list`);
      }
      if (
        entry.RepoTags !== undefined && entry.RepoTags !== null &&
        !(Array.isArray(entry.RepoTags) && entry.RepoTags.every((t) => typeof t === "string"))
      ) {
        throw fail(`manifest.json entry ${i} has a bad RepoTags list`);
      }
      return entry as { Config: string; RepoTags?: string[] | null; Layers: string[] };
    });
  }

  async #docker(): Promise<Array<{ target: Descriptor; names: string[] }>> {
    const found: Array<{ target: Descriptor; names: string[] }> = [];
    for (const [i, entry] of (await this.#dockerManifest()).entries()) {
      const configFile = this.#file(entry.Config);
      if (!configFile) {
        throw fail(
          `manifest.json entry ${i} names config ${entry.Config}, which is not in the archive`,
        );
      }
      const named = /(?:^|\/)([0-9a-f]{64})\.json$/.exec(entry.Config);
      if (named && configFile.digest !== `sha256:${named[1]}`) {
        throw fail(`digest mismatch in ${entry.Config}: its content is ${configFile.digest}`);
      }
      const configBytes = await this.#bytes(configFile, entry.Config);
      const config = parseJson(entry.Config, configBytes) as { rootfs?: { diff_ids?: unknown } };
      const diffIds = config?.rootfs?.diff_ids;
      if (!Array.isArray(diffIds)) throw fail(`${entry.Config} has no rootfs.diff_ids`);
      if (diffIds.length !== entry.Layers.length) {
        throw fail(
          `manifest.json entry ${i} lists ${entry.Layers.length} layers, but ${entry.Config} has ${diffIds.length} diff IDs`,
        );
      }
      const configDesc = await this.#commit(configFile);
      const layers: Descriptor[] = [];
      for (const [j, layerPath] of entry.Layers.entries()) {
        const file = this.#file(layerPath);
        if (!file) {
          throw fail(
            `manifest.json entry ${i} names layer ${layerPath}, which is not in the archive`,
          );
        }
        const head = file.kind === "memory" ? file.data.subarray(0, 16) : file.head;
        const compression = detectCompression(head);
        const { digest, size } = await this.#commit(file);
        if (compression === "none" && digest !== diffIds[j]) {
          throw fail(
            `layer ${layerPath} is ${digest}, but ${entry.Config} says its diff ID is ${
              String(diffIds[j])
            }`,
          );
        }
        layers.push({
          mediaType: compression === "gzip"
            ? MEDIA_TYPES.ociLayerGzip
            : compression === "zstd"
            ? MEDIA_TYPES.ociLayerZstd
            : MEDIA_TYPES.ociLayer,
          digest,
          size,
        });
      }
      const manifest = {
        schemaVersion: 2,
        mediaType: MEDIA_TYPES.ociManifest,
        config: {
          mediaType: MEDIA_TYPES.ociConfig,
          digest: configDesc.digest,
          size: configDesc.size,
        },
        layers,
      };
      const data = new TextEncoder().encode(JSON.stringify(manifest));
      const digest = digestOf(data);
      await this.#commit({ kind: "memory", data, digest });
      const labels: Record<string, string> = {
        "containerd.io/gc.ref.content.config": configDesc.digest,
      };
      layers.forEach((l, j) => labels[`containerd.io/gc.ref.content.l.${j}`] = l.digest);
      await this.#content.update(digest, labels);
      found.push({
        target: { mediaType: MEDIA_TYPES.ociManifest, digest, size: data.length },
        names: (entry.RepoTags ?? []).map((t) => normalizeName(t, "manifest.json RepoTags")),
      });
    }
    return found;
  }

  /** Deletes what this import added and aborts its open ingests. */
  async rollback(): Promise<void> {
    for (const ref of this.#openIngests) await this.#content.abort(ref).catch(() => {});
    for (const digest of this.#added) await this.#content.delete(digest).catch(() => {});
    this.#openIngests.clear();
    this.#added.clear();
  }
}

function checkDescriptor(raw: unknown, what: string): Descriptor {
  const d = raw as Descriptor;
  if (typeof d !== "object" || d === null) throw fail(`${what} is not a descriptor`);
  if (typeof d.mediaType !== "string" || d.mediaType === "") throw fail(`${what} has no mediaType`);
  if (!Number.isSafeInteger(d.size) || d.size < 0) throw fail(`${what} has no valid size`);
  try {
    parseDigest(d.digest);
  } catch (err) {
    throw fail(`${what} has an invalid digest ${JSON.stringify(d.digest)}`, err);
  }
  return d;
}
