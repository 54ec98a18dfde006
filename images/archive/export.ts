/**
 * Export of images as one tar that both `docker load` and OCI tools read, as
 * `ctr images export` writes it: an OCI image layout (`oci-layout`,
 * `index.json` with the `io.containerd.image.name` and
 * `org.opencontainers.image.ref.name` annotations, `blobs/sha256/<hex>`)
 * plus docker's `manifest.json` (Config, RepoTags and Layers pointing at the
 * blob paths).
 *
 * @module
 */

import { InvalidArgument, NotFound } from "../../errors.ts";
import { parseDigest } from "../content/digest.ts";
import {
  configPlatform,
  defaultPlatform,
  formatPlatform,
  type PlatformMatcher,
  platformMatcher,
} from "../registry/platforms.ts";
import { familiarReference, parseReference } from "../registry/reference.ts";
import { type ContentStore, type Descriptor, MEDIA_TYPES } from "../types.ts";
import { TarWriter } from "./_tar.ts";

/** An image to export: its name and target. */
export interface ExportImage {
  name: string;
  target: Descriptor;
}

/** Options for {@link exportArchive}. */
export interface ExportOptions {
  /** Where the blobs are. */
  content: ContentStore;
  /**
   * Which platforms' manifests of a multi-platform index to include
   * (default: every platform whose manifest is in the store). The manifest
   * that `manifest.json` lists for docker is the best match of
   * `dockerPlatform`, by default this machine's.
   */
  platforms?: PlatformMatcher;
  /** The platform whose manifest docker's `manifest.json` lists (default: this machine's). */
  dockerPlatform?: PlatformMatcher;
}

const INDEX_TYPES = new Set<string>([MEDIA_TYPES.ociIndex, MEDIA_TYPES.dockerManifestList]);
const MANIFEST_TYPES = new Set<string>([MEDIA_TYPES.ociManifest, MEDIA_TYPES.dockerManifest]);

interface ManifestDoc {
  config: Descriptor;
  layers: Descriptor[];
}

interface Plan {
  blobs: Map<string, Descriptor>;
  index: Descriptor[];
  docker: Array<{ Config: string; RepoTags: string[]; Layers: string[] }>;
}

function blobPath(digest: string): string {
  const { algorithm, hex } = parseDigest(digest);
  return `blobs/${algorithm}/${hex}`;
}

function parse<T>(bytes: Uint8Array, what: string): T {
  try {
    return JSON.parse(new TextDecoder().decode(bytes)) as T;
  } catch (err) {
    throw new InvalidArgument(`Export images: ${what} is not valid JSON`, { cause: err });
  }
}

/**
 * Plans the archive of `images` (checking that every blob it needs is in the
 * store) and returns it as a stream. Throws NotFound naming a missing blob,
 * InvalidArgument for an empty list or a bad name.
 */
export async function exportArchive(
  images: ExportImage[],
  options: ExportOptions,
): Promise<ReadableStream<Uint8Array>> {
  if (images.length === 0) throw new InvalidArgument("Export images: no image given");
  const plan = await makePlan(images, options);
  const tar = new TarWriter();
  const enc = new TextEncoder();
  (async () => {
    await tar.file("oci-layout", enc.encode(JSON.stringify({ imageLayoutVersion: "1.0.0" })));
    await tar.file(
      "index.json",
      enc.encode(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: MEDIA_TYPES.ociIndex,
          manifests: plan.index,
        }),
      ),
    );
    await tar.file("manifest.json", enc.encode(JSON.stringify(plan.docker)));
    await tar.directory("blobs/");
    const algorithms = new Set([...plan.blobs.keys()].map((d) => parseDigest(d).algorithm));
    for (const a of [...algorithms].sort()) await tar.directory(`blobs/${a}/`);
    for (const desc of plan.blobs.values()) {
      await tar.stream(blobPath(desc.digest), desc.size, await options.content.read(desc.digest));
    }
    tar.finish();
  })().catch((err) => tar.abort(err instanceof Error ? err : new Error(String(err))));
  return tar.readable;
}

function platformName(platforms: PlatformMatcher): string {
  return platforms.name ?? "the platforms asked for";
}

async function makePlan(images: ExportImage[], options: ExportOptions): Promise<Plan> {
  const content = options.content;
  const dockerPlatform = options.dockerPlatform ?? platformMatcher(defaultPlatform());
  const plan: Plan = { blobs: new Map(), index: [], docker: [] };
  const dockerByManifest = new Map<
    string,
    { Config: string; RepoTags: string[]; Layers: string[] }
  >();

  const need = async (desc: Descriptor, what: string): Promise<void> => {
    let size: number;
    try {
      size = (await content.info(desc.digest)).size;
    } catch (err) {
      if (err instanceof NotFound) {
        throw new NotFound(`Export images: ${what} ${desc.digest} is not in the content store`, {
          cause: err,
        });
      }
      throw err;
    }
    if (size !== desc.size) {
      throw new InvalidArgument(
        `Export images: ${what} ${desc.digest} is ${size} bytes, its descriptor says ${desc.size}`,
      );
    }
    plan.blobs.set(desc.digest, { mediaType: desc.mediaType, digest: desc.digest, size });
  };

  const manifest = async (desc: Descriptor, what: string): Promise<ManifestDoc> => {
    await need(desc, what);
    const doc = parse<ManifestDoc>(await content.readBytes(desc.digest), `${what} ${desc.digest}`);
    if (!doc.config || !Array.isArray(doc.layers)) {
      throw new InvalidArgument(`Export images: ${what} ${desc.digest} is not an image manifest`);
    }
    await need(doc.config, `the config of ${what}`);
    for (const [i, layer] of doc.layers.entries()) await need(layer, `layer ${i} of ${what}`);
    return doc;
  };

  for (const image of images) {
    const ref = parseReference(image.name);
    const what = `image ${image.name}`;
    let dockerManifest: { desc: Descriptor; doc: ManifestDoc } | undefined;
    if (INDEX_TYPES.has(image.target.mediaType)) {
      await need(image.target, what);
      const index = parse<{ manifests?: Descriptor[] }>(
        await content.readBytes(image.target.digest),
        what,
      );
      let best: { desc: Descriptor; doc: ManifestDoc } | undefined;
      let included = 0;
      for (const child of index.manifests ?? []) {
        if (!MANIFEST_TYPES.has(child.mediaType)) continue;
        if (options.platforms && child.platform && !options.platforms.match(child.platform)) {
          continue;
        }
        try {
          await content.info(child.digest);
        } catch (err) {
          if (err instanceof NotFound) continue; // a platform that was not pulled
          throw err;
        }
        const doc = await manifest(child, `a manifest of ${what}`);
        included++;
        if (
          child.platform && dockerPlatform.match(child.platform) &&
          (!best?.desc.platform || dockerPlatform.less(child.platform, best.desc.platform))
        ) {
          best = { desc: child, doc };
        }
      }
      if (options.platforms && included === 0) {
        throw new NotFound(
          `Export images: ${what} has no manifest for ${
            platformName(options.platforms)
          } in the content store`,
        );
      }
      dockerManifest = best;
    } else if (MANIFEST_TYPES.has(image.target.mediaType)) {
      const doc = await manifest(image.target, what);
      if (options.platforms) {
        // An image without an index: its config says its platform (the check pull --platform makes).
        const have = configPlatform(
          parse<Record<string, unknown>>(
            await content.readBytes(doc.config.digest),
            `the config of ${what}`,
          ),
        );
        if (!options.platforms.match(have)) {
          throw new NotFound(
            `Export images: ${what} is an image for ${formatPlatform(have)}, not for ${
              platformName(options.platforms)
            }`,
          );
        }
      }
      dockerManifest = { desc: image.target, doc };
    } else {
      throw new InvalidArgument(
        `Export images: ${what} has target media type ${image.target.mediaType}`,
      );
    }
    plan.index.push({
      ...image.target,
      annotations: {
        ...image.target.annotations,
        "io.containerd.image.name": image.name,
        "org.opencontainers.image.ref.name": ref.tag ?? ref.digest ?? "latest",
      },
    });
    if (dockerManifest) {
      let entry = dockerByManifest.get(dockerManifest.desc.digest);
      if (!entry) {
        entry = {
          Config: blobPath(dockerManifest.doc.config.digest),
          RepoTags: [],
          Layers: dockerManifest.doc.layers.map((l) => blobPath(l.digest)),
        };
        dockerByManifest.set(dockerManifest.desc.digest, entry);
        plan.docker.push(entry);
      }
      if (ref.tag !== undefined) {
        const tag = familiarReference({ domain: ref.domain, path: ref.path, tag: ref.tag });
        if (!entry.RepoTags.includes(tag)) entry.RepoTags.push(tag);
      }
    }
  }
  return plan;
}
