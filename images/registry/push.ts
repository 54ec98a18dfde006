/**
 * Pushing an image from a content store to a registry (OCI distribution
 * spec): blobs first (configs and layers; each checked with HEAD and skipped
 * when the repository has it, else uploaded, monolithic with one PUT (from
 * memory up to 4 MiB, else streamed) or in PATCH chunks), then manifests
 * children first, then the tags.
 * A blob labelled `containerd.io/distribution.source.<registry>=<repo>` for
 * the same registry is first offered as a cross-repository mount.
 *
 * @module
 */

import { InvalidArgument, NotFound } from "../../errors.ts";
import type { ContentProvider, Descriptor } from "../types.ts";
import { isIndexType, isManifestType, type RegistryClient } from "./client.ts";
import { type ProgressFn, ProgressTracker } from "./progress.ts";
import { formatReference, parseReference, type Reference, referenceName } from "./reference.ts";

/** Options for {@link pushImage}. */
export interface PushImageOptions {
  /** Where the image's blobs are read from. */
  store: ContentProvider;
  /** More tags to point at the target, besides the reference's own tag. */
  tags?: string[];
  /** Blobs uploaded at once (default 3). */
  concurrency?: number;
  /** Upload blobs larger than this in PATCH chunks of this many bytes (default: one monolithic PUT per blob). */
  chunkSize?: number;
  /** Offer cross-repository mounts for blobs whose source label names the same registry (default true). */
  mount?: boolean;
  onProgress?: ProgressFn;
  signal?: AbortSignal;
}

/** The result of {@link pushImage}. */
export interface PushResult {
  name: string;
  target: Descriptor;
  /** Blobs (configs, layers) uploaded. */
  uploaded: number;
  /** Blobs the repository had already. */
  existing: number;
  /** Blobs mounted from another repository. */
  mounted: number;
  /** Manifests and indexes put. */
  manifests: number;
}

interface Walked {
  manifests: { desc: Descriptor; bytes: Uint8Array }[];
  blobs: Descriptor[];
}

async function readJson(
  store: ContentProvider,
  desc: Descriptor,
): Promise<{ bytes: Uint8Array; json: Record<string, unknown> }> {
  let bytes: Uint8Array;
  try {
    bytes = await store.readBytes(desc.digest);
  } catch (err) {
    if (err instanceof NotFound) {
      throw new NotFound(`push failed: manifest ${desc.digest} is not in the content store`, {
        cause: err,
      });
    }
    throw err;
  }
  try {
    return { bytes, json: JSON.parse(new TextDecoder().decode(bytes)) as Record<string, unknown> };
  } catch (err) {
    throw new InvalidArgument(`push failed: manifest ${desc.digest} is not JSON`, { cause: err });
  }
}

/** Collects the manifests (children before parents) and blobs reachable from `target`. */
async function walk(store: ContentProvider, target: Descriptor): Promise<Walked> {
  const out: Walked = { manifests: [], blobs: [] };
  const seenBlobs = new Set<string>();
  const seenManifests = new Set<string>();
  const addBlob = (d: Descriptor) => {
    if (!seenBlobs.has(d.digest)) {
      seenBlobs.add(d.digest);
      out.blobs.push(d);
    }
  };
  const visit = async (desc: Descriptor, depth: number) => {
    if (depth > 4) throw new InvalidArgument("push failed: indexes nested too deep");
    if (seenManifests.has(desc.digest)) return;
    seenManifests.add(desc.digest);
    const { bytes, json } = await readJson(store, desc);
    if (isIndexType(desc.mediaType)) {
      for (const m of (json.manifests as Descriptor[] | undefined) ?? []) {
        if (isManifestType(m.mediaType)) await visit(m, depth + 1);
        else addBlob(m);
      }
    } else if (isManifestType(desc.mediaType)) {
      const config = json.config as Descriptor | undefined;
      if (!config) throw new InvalidArgument(`push failed: manifest ${desc.digest} has no config`);
      addBlob(config);
      for (const l of (json.layers as Descriptor[] | undefined) ?? []) addBlob(l);
    } else {
      throw new InvalidArgument(
        `push failed: ${desc.digest} has media type "${desc.mediaType}", not a manifest or index`,
      );
    }
    out.manifests.push({ desc, bytes });
  };
  await visit(target, 0);
  return out;
}

async function readRange(
  store: ContentProvider,
  desc: Descriptor,
  offset: number,
  size: number,
): Promise<Uint8Array<ArrayBuffer>> {
  const out = new Uint8Array(size);
  let at = 0;
  const reader = (await store.read(desc.digest, { offset })).getReader();
  try {
    while (at < size) {
      const { value, done } = await reader.read();
      if (done) break;
      const take = Math.min(value.length, size - at);
      out.set(value.subarray(0, take), at);
      at += take;
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  if (at !== size) {
    throw new InvalidArgument(
      `push failed: blob ${desc.digest} is shorter than its descriptor says`,
    );
  }
  return out;
}

/** Counts bytes passing through, for progress. */
function counting(
  stream: ReadableStream<Uint8Array>,
  onBytes: (n: number) => void,
): ReadableStream<Uint8Array> {
  return stream.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        onBytes(chunk.length);
        controller.enqueue(chunk);
      },
    }),
  );
}

/** Blobs up to this size are uploaded from memory, with their Content-Length; larger ones are streamed. */
const MONOLITHIC_IN_MEMORY = 4 << 20;

/** Blob uploads under way, per client, by `<domain>/<repository>@<digest>`. */
const uploading = new WeakMap<RegistryClient, Map<string, Promise<unknown>>>();

/**
 * Uploads (or mounts) a blob unless another push through the same client is
 * doing so to the same repository: then its outcome is awaited, and the blob
 * counts as existing (or is uploaded here after all, should that push fail).
 * Two pushes racing the same mounts made Debian's docker-registry answer 500
 * and MANIFEST_BLOB_UNKNOWN now and then.
 */
async function uploadOnce(
  client: RegistryClient,
  ref: Reference,
  desc: Descriptor,
  options: PushImageOptions,
  progress: ProgressTracker,
): Promise<"uploaded" | "existing" | "mounted"> {
  let inFlight = uploading.get(client);
  if (!inFlight) uploading.set(client, inFlight = new Map());
  const key = `${ref.domain}/${ref.path}@${desc.digest}`;
  const other = inFlight.get(key);
  if (other) {
    try {
      await other;
      progress.status(desc.digest, "exists");
      return "existing";
    } catch {
      // That push failed: upload it here.
    }
  }
  const mine = uploadBlob(client, ref, desc, options, progress);
  inFlight.set(key, mine);
  try {
    return await mine;
  } finally {
    if (inFlight.get(key) === mine) inFlight.delete(key);
  }
}

async function uploadBlob(
  client: RegistryClient,
  ref: Reference,
  desc: Descriptor,
  options: PushImageOptions,
  progress: ProgressTracker,
): Promise<"uploaded" | "existing" | "mounted"> {
  const sig = options.signal ? { signal: options.signal } : {};
  const { store } = options;
  if (await client.blobExists(ref, desc.digest, sig)) {
    progress.status(desc.digest, "exists");
    return "existing";
  }
  let mount: { digest: string; from: string } | undefined;
  if (options.mount ?? true) {
    try {
      const info = await store.info(desc.digest);
      const from = info.labels[`containerd.io/distribution.source.${ref.domain}`];
      if (from && from !== ref.path) mount = { digest: desc.digest, from: from.split(",")[0]! };
    } catch (err) {
      if (err instanceof NotFound) {
        throw new NotFound(`push failed: blob ${desc.digest} is not in the content store`, {
          cause: err,
        });
      }
      throw err;
    }
  } else {
    await store.info(desc.digest).catch((err) => {
      if (err instanceof NotFound) {
        throw new NotFound(`push failed: blob ${desc.digest} is not in the content store`, {
          cause: err,
        });
      }
      throw err;
    });
  }
  let location = await client.startUpload(ref, { ...sig, ...(mount ? { mount } : {}) });
  if (location === undefined) {
    progress.status(desc.digest, "exists");
    return "mounted";
  }
  const what = `upload of blob ${desc.digest} to ${referenceName(ref)}`;
  progress.status(desc.digest, "uploading", 0);
  const chunk = options.chunkSize;
  if (chunk && chunk > 0 && desc.size > chunk) {
    for (let offset = 0; offset < desc.size; offset += chunk) {
      const n = Math.min(chunk, desc.size - offset);
      const bytes = await readRange(store, desc, offset, n);
      const next = await client.uploadRequest(ref, location, {
        method: "PATCH",
        headers: {
          "content-type": "application/octet-stream",
          "content-range": `${offset}-${offset + n - 1}`,
          "content-length": String(n),
        },
        body: () => bytes,
        what,
        ...sig,
      });
      if (!next) {
        throw new InvalidArgument(`${what} failed: the registry gave no Location after a chunk`);
      }
      location = next;
      progress.bytes(desc.digest, n);
    }
    await client.uploadRequest(ref, location, {
      method: "PUT",
      query: { digest: desc.digest },
      headers: { "content-length": "0" },
      what,
      ...sig,
    });
  } else if (desc.size <= MONOLITHIC_IN_MEMORY) {
    // One PUT with the blob in memory, so that it goes with its Content-Length.
    const bytes = await readRange(store, desc, 0, desc.size);
    await client.uploadRequest(ref, location, {
      method: "PUT",
      query: { digest: desc.digest },
      headers: { "content-type": "application/octet-stream", "content-length": String(desc.size) },
      body: () => bytes,
      what,
      ...sig,
    });
    progress.bytes(desc.digest, desc.size);
  } else {
    // One PUT streaming the blob from the store. Deno's fetch sends a stream chunked, without
    // the Content-Length (as docker push streams its PATCH).
    let sent = 0;
    await client.uploadRequest(ref, location, {
      method: "PUT",
      query: { digest: desc.digest },
      headers: { "content-type": "application/octet-stream", "content-length": String(desc.size) },
      body: async () => {
        progress.bytes(desc.digest, -sent);
        sent = 0;
        return counting(await store.read(desc.digest), (n) => {
          sent += n;
          progress.bytes(desc.digest, n);
        });
      },
      what,
      ...sig,
    });
  }
  progress.status(desc.digest, "done");
  return "uploaded";
}

/**
 * Pushes the image whose root is `target` (a manifest or an index, with
 * everything it references in `options.store`) to `ref`: missing blobs,
 * then the manifests, then the tag(s). Throws NotFound when the store lacks
 * part of the image, Unauthenticated when the registry refuses, Unavailable
 * when it cannot be reached.
 */
export async function pushImage(
  client: RegistryClient,
  ref: string | Reference,
  target: Descriptor,
  options: PushImageOptions,
): Promise<PushResult> {
  const reference = typeof ref === "string" ? parseReference(ref) : ref;
  const name = formatReference(reference);
  if (reference.digest && reference.digest !== target.digest) {
    throw new InvalidArgument(
      `push ${name} failed: the reference pins ${reference.digest} but the image is ${target.digest}`,
    );
  }
  const { manifests, blobs } = await walk(options.store, target);
  const progress = new ProgressTracker(options.onProgress);
  for (const b of blobs) progress.add(b.digest, b.mediaType, b.size);
  const result: PushResult = { name, target, uploaded: 0, existing: 0, mounted: 0, manifests: 0 };
  let next = 0;
  let failure: unknown;
  const worker = async () => {
    while (failure === undefined && next < blobs.length) {
      const blob = blobs[next++]!;
      try {
        const outcome = await uploadOnce(client, reference, blob, options, progress);
        result[outcome]++;
      } catch (err) {
        failure ??= err;
      }
    }
  };
  await Promise.all(
    Array.from({ length: Math.max(1, Math.min(options.concurrency ?? 3, blobs.length)) }, worker),
  );
  if (failure !== undefined) throw failure;
  progress.finish();
  const sig = options.signal ? { signal: options.signal } : {};
  for (const m of manifests) {
    const isRoot = m.desc.digest === target.digest;
    const objects = isRoot
      ? [...new Set([reference.tag ?? target.digest, ...(options.tags ?? [])])]
      : [m.desc.digest];
    for (const object of objects) {
      const reported = await client.putManifest(reference, object, {
        mediaType: m.desc.mediaType,
        bytes: m.bytes,
      }, sig);
      if (reported && reported !== m.desc.digest) {
        throw new InvalidArgument(
          `push ${name} failed: the registry stored manifest ${m.desc.digest} as ${reported}`,
        );
      }
      result.manifests++;
    }
  }
  return result;
}
