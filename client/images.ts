/**
 * `client.images`: pull, push, list, get, remove, tag, import, export,
 * prune and usage, over the daemon's API.
 *
 * @module
 */

import type { Transport } from "./http.ts";
import type {
  DiskUsageInfo,
  ErrorBody,
  ImageInfo,
  ImportResultInfo,
  PruneResultInfo,
  PullProgressInfo,
  PullRequest,
  PullResultInfo,
  PushRequest,
  PushResultInfo,
  TransferProgressInfo,
} from "./types.ts";
import { decodeError } from "./http.ts";
import { Internal, Unavailable } from "../errors.ts";
import { passThrough } from "../util/streams.ts";

/** Options for {@link ImagesClient.pull}. */
export interface PullOptions extends Omit<PullRequest, "ref"> {
  /** Called with each progress message (about ten a second). */
  onProgress?: (progress: PullProgressInfo) => void;
  signal?: AbortSignal;
}

/** Options for {@link ImagesClient.push}. */
export interface PushOptions extends PushRequest {
  onProgress?: (progress: TransferProgressInfo) => void;
  signal?: AbortSignal;
}

/** Options for {@link ImagesClient.import}. */
export interface ImportOptions {
  /** The name for the image (an archive of one image only). */
  name?: string;
  /** Unpack for the daemon's platform (default true). */
  unpack?: boolean;
  signal?: AbortSignal;
}

/** Options for {@link ImagesClient.export}. */
export interface ExportOptions {
  /** Only this platform of multi-platform images (default: every platform in the store). */
  platform?: string;
  signal?: AbortSignal;
}

function path(name: string): string {
  return `/images/${encodeURIComponent(name)}`;
}

/** Reads a stream of `{ progress }` lines ending in `{ result }` or `{ error }`. */
async function progressStream<P, R>(
  messages: AsyncGenerator<{ progress: P } | { result: R } | ErrorBody>,
  what: string,
  onProgress: ((p: P) => void) | undefined,
): Promise<R> {
  for await (const m of messages) {
    if ("progress" in m) onProgress?.(m.progress);
    else if ("result" in m) return m.result;
    else if ("error" in m) throw decodeError(500, m, what);
  }
  throw new Internal(`${what}: the daemon's stream ended without a result`);
}

/** The image operations of a {@link TugClient}. */
export class ImagesClient {
  readonly #t: Transport;
  readonly #namespace: string;

  /** @internal Use `client.images`. */
  constructor(transport: Transport, namespace: string) {
    this.#t = transport;
    this.#namespace = namespace;
  }

  /** The images of the namespace, by name. */
  list(): Promise<ImageInfo[]> {
    return this.#t.json("GET", "/images", { namespace: this.#namespace });
  }

  /** The image `name` (as given or normalized); throws NotFound. */
  get(name: string): Promise<ImageInfo> {
    return this.#t.json("GET", path(name), { namespace: this.#namespace });
  }

  /**
   * Pulls `ref` (normalized as Docker does) and unpacks it, calling
   * `onProgress` as it goes; resolves when the image is recorded.
   */
  async pull(ref: string, options: PullOptions = {}): Promise<PullResultInfo> {
    const { onProgress, signal, ...rest } = options;
    const messages = await this.#t.lines<
      { progress: PullProgressInfo } | { result: PullResultInfo } | ErrorBody
    >("POST", "/images/pull", {
      namespace: this.#namespace,
      json: { ref, ...rest } satisfies PullRequest,
      ...(signal ? { signal } : {}),
    });
    return await progressStream(
      messages,
      `Pull ${ref}`,
      onProgress,
    );
  }

  /** Pushes image `name` to its registry (or `options.remote`). */
  async push(name: string, options: PushOptions = {}): Promise<PushResultInfo> {
    const { onProgress, signal, ...rest } = options;
    const messages = await this.#t.lines<
      { progress: TransferProgressInfo } | { result: PushResultInfo } | ErrorBody
    >("POST", `${path(name)}/push`, {
      namespace: this.#namespace,
      json: rest satisfies PushRequest,
      ...(signal ? { signal } : {}),
    });
    return await progressStream(
      messages,
      `Push ${name}`,
      onProgress,
    );
  }

  /** Removes the image record `name` (its space is freed soon after, or before returning with `sync`). */
  async remove(name: string, options: { sync?: boolean } = {}): Promise<void> {
    await this.#t.json("DELETE", path(name), {
      namespace: this.#namespace,
      query: { sync: options.sync },
    });
  }

  /** Records `target` as another name of image `source`; throws AlreadyExists unless `force`. */
  tag(source: string, target: string, options: { force?: boolean } = {}): Promise<ImageInfo> {
    return this.#t.json("POST", `${path(source)}/tag`, {
      namespace: this.#namespace,
      json: { target, ...(options.force ? { force: true } : {}) },
    });
  }

  /** Imports an OCI layout or `docker save` archive (plain, gzip or zstd tar). */
  import(
    archive: ReadableStream<Uint8Array> | Uint8Array,
    options: ImportOptions = {},
  ): Promise<ImportResultInfo> {
    return this.#t.json("POST", "/images/import", {
      namespace: this.#namespace,
      body: archive,
      query: { name: options.name, unpack: options.unpack === false ? "false" : undefined },
      ...(options.signal ? { signal: options.signal } : {}),
    });
  }

  /** The archive (a tar) of images `names`, as a stream. */
  async export(names: string[], options: ExportOptions = {}): Promise<ReadableStream<Uint8Array>> {
    const res = await this.#t.request("GET", "/images/export", {
      namespace: this.#namespace,
      query: { name: names, platform: options.platform },
      ...(options.signal ? { signal: options.signal } : {}),
    });
    if (!res.body) return new ReadableStream({ start: (c) => c.close() });
    // The status was 200 before the daemon read a blob: a failure after that (or the daemon's
    // shutdown) can only end the connection, which fetch reports as a bare "error reading a body".
    return passThrough(res.body, {
      error: (err) =>
        options.signal?.aborted ? err : new Unavailable(
          `Export ${
            names.join(", ")
          }: the daemon broke off the archive (a failure or its shutdown; its log says which)`,
          { cause: err },
        ),
    });
  }

  /** Collects garbage; with `all`, first removes every image no container uses. */
  prune(options: { all?: boolean } = {}): Promise<PruneResultInfo> {
    return this.#t.json("POST", "/images/prune", {
      namespace: this.#namespace,
      json: options.all ? { all: true } : {},
    });
  }

  /** Disk usage of the namespace, per image and in total. */
  usage(): Promise<DiskUsageInfo> {
    return this.#t.json("GET", "/images/usage", { namespace: this.#namespace });
  }
}
