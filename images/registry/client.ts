/**
 * The registry client (OCI distribution spec): resolves references to
 * descriptors, fetches manifests and blobs (with `Range` for resumes), and
 * offers the push primitives (blob existence, uploads, manifest PUT). It
 * tries a namespace's hosts in order (mirrors first, see hosts.ts), keeps
 * authentication state across requests (auth.ts), and maps registry answers
 * to tug's error classes:
 *
 * - unknown repository, tag, manifest or blob → NotFound naming it;
 * - 401/403 → Unauthenticated naming the registry;
 * - connection failures, 429 and 5xx → Unavailable naming the host;
 * - a digest mismatch → InvalidArgument naming the object and both digests;
 * - Docker schema 1 manifests → NotImplemented.
 *
 * @module
 */

import {
  InvalidArgument,
  NotFound,
  NotImplemented,
  TugError,
  Unauthenticated,
  Unavailable,
} from "../../errors.ts";
import { digestOf, parseDigest } from "../content/digest.ts";
import { type Descriptor, type Digest, MEDIA_TYPES } from "../types.ts";
import { Authorizer, challengeError, type CredentialsFn, repositoryScope } from "./auth.ts";
import {
  filesStamp,
  type HostCapability,
  type HostsOptions,
  type LoadedHosts,
  loadRegistryHosts,
  type RegistryHost,
} from "./hosts.ts";
import {
  formatReference,
  parseReference,
  type Reference,
  referenceName,
  referenceObject,
} from "./reference.ts";
import { Transport } from "./transport.ts";
import { concat } from "../../util/bytes.ts";
import { sleep } from "../../util/sleep.ts";

/** The largest manifest tug reads (containerd's limit). */
export const MAX_MANIFEST_SIZE = 4 << 20;

/** Docker schema 1 media types, refused with NotImplemented. */
const SCHEMA1_TYPES = [
  "application/vnd.docker.distribution.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.v1+prettyjws",
];

/** What tug asks registries for when it resolves or fetches a manifest. */
export const MANIFEST_ACCEPT = [
  MEDIA_TYPES.ociIndex,
  MEDIA_TYPES.ociManifest,
  MEDIA_TYPES.dockerManifestList,
  MEDIA_TYPES.dockerManifest,
  "*/*",
].join(", ");

const MANIFEST_TYPES = new Set<string>([
  MEDIA_TYPES.ociIndex,
  MEDIA_TYPES.ociManifest,
  MEDIA_TYPES.dockerManifestList,
  MEDIA_TYPES.dockerManifest,
]);

/** True for the media types of manifests and indexes (fetched from `/manifests/`). */
export function isManifestType(mediaType: string): boolean {
  return MANIFEST_TYPES.has(mediaType) || SCHEMA1_TYPES.includes(mediaType);
}

/** True for index types (OCI index, Docker manifest list). */
export function isIndexType(mediaType: string): boolean {
  return mediaType === MEDIA_TYPES.ociIndex || mediaType === MEDIA_TYPES.dockerManifestList;
}

/** Throws NotImplemented for Docker schema 1 manifests. */
export function refuseSchema1(mediaType: string, what: string): void {
  if (SCHEMA1_TYPES.includes(mediaType)) {
    throw new NotImplemented(
      `read manifest of ${what} failed: Docker schema 1 manifests (${mediaType}) are not supported; push the image again as Docker schema 2 or OCI`,
    );
  }
}

/** Options for {@link RegistryClient}. */
export interface RegistryClientOptions extends HostsOptions {
  /** Credentials per registry host; anonymous when absent or when it returns undefined. */
  credentials?: CredentialsFn;
  /** User-Agent header (default `tug/<version>`). */
  userAgent?: string;
  /** Replaces the hosts lookup (hosts.ts's registryHosts with the options above); cached for the client's lifetime. */
  hosts?: (namespace: string) => Promise<RegistryHost[]>;
}

/** The result of {@link RegistryClient.resolve}. */
export interface Resolved {
  reference: Reference;
  /** The normalised reference, e.g. `docker.io/library/busybox:latest`. */
  name: string;
  /** The manifest or index the reference names. */
  descriptor: Descriptor;
  /** The manifest's bytes, when resolving had to GET them (already verified against the descriptor). */
  manifest?: Uint8Array;
  /** The host that answered. */
  host: string;
}

/** An open blob (or manifest) download. */
export interface BlobResponse {
  /** The body; it starts at `offset`. */
  body: ReadableStream<Uint8Array>;
  /** Where the body starts: the requested offset (206), or 0 when the server ignored the Range (200). */
  offset: number;
  /** The host that answered. */
  host: string;
  /**
   * The response the body belongs to, kept referenced while the body is
   * read: once Deno 2.9 has collected a Response, aborting the request's
   * signal no longer errors a pending read of its body.
   */
  response: Response;
}

/** Options of requests that can be cancelled. */
export interface SignalOptions {
  signal?: AbortSignal;
}

interface Attempt {
  response: Response;
  host: RegistryHost;
  url: string;
}

interface RequestSpec {
  capability: HostCapability;
  /** Path after `/v2/<repository>`, e.g. `/manifests/latest`. */
  suffix: string;
  method: string;
  headers?: Record<string, string>;
  /** Makes the body (again for each attempt, e.g. after a 401). */
  body?: () => BodyInit | null | Promise<BodyInit | null>;
  /** Statuses that are answers (returned), not failures. */
  accept: (status: number) => boolean;
  /** What the request is about, for error messages (e.g. `manifest docker.io/x:1`). */
  what: string;
  push?: boolean;
  signal?: AbortSignal;
  /** Only the first host (push goes to one host). */
  firstHostOnly?: boolean;
  /** Query parameters. */
  query?: Record<string, string>;
}

/** Reads the OCI error body of a failed response, for messages (`MANIFEST_UNKNOWN: manifest unknown`). */
async function errorDetail(res: Response): Promise<{ codes: string[]; text: string }> {
  let text = "";
  try {
    text = (await res.text()).slice(0, 4096);
  } catch {
    // body unreadable
  }
  try {
    const parsed = JSON.parse(text) as {
      errors?: { code?: string; message?: string; detail?: unknown }[];
    };
    if (Array.isArray(parsed.errors) && parsed.errors.length > 0) {
      const codes = parsed.errors.map((e) => String(e.code ?? ""));
      const msg = parsed.errors.map((e) => `${e.code ?? "error"}: ${e.message ?? ""}`.trim()).join(
        "; ",
      );
      return { codes, text: msg };
    }
  } catch {
    // not JSON
  }
  return { codes: [], text: text.trim().replace(/\s+/g, " ").slice(0, 200) };
}

/** Maps a failed registry response to a tug error. */
async function responseError(res: Response, what: string, host: string): Promise<TugError> {
  const { codes, text } = await errorDetail(res);
  const detail = text ? `: ${text}` : "";
  const status = `${res.status}${res.statusText ? " " + res.statusText : ""}`;
  // A 400 with an *_UNKNOWN code is a refused upload (a manifest naming a blob the registry does
  // not have), not a missing object.
  if (res.status === 404 || (res.status !== 400 && codes.some((c) => /_UNKNOWN$/.test(c)))) {
    return new NotFound(`${what} not found on ${host}${detail || ` (${status})`}`);
  }
  if (res.status === 401 || res.status === 403) {
    return new Unauthenticated(`access to ${what} on registry ${host} denied (${status})${detail}`);
  }
  if (res.status === 429 || res.status >= 500) {
    return new Unavailable(`request for ${what} to ${host} failed: ${status}${detail}`);
  }
  if (res.status === 416) {
    return new InvalidArgument(`request for ${what} to ${host} failed: range not satisfiable`);
  }
  return new InvalidArgument(`request for ${what} to ${host} failed: ${status}${detail}`);
}

/** Reads at most `limit` bytes of a body; throws InvalidArgument beyond. */
async function readLimited(
  body: ReadableStream<Uint8Array> | null,
  limit: number,
  what: string,
): Promise<Uint8Array> {
  if (!body) return new Uint8Array();
  const parts: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > limit) throw new InvalidArgument(`read ${what} failed: larger than ${limit} bytes`);
    parts.push(chunk);
  }
  return concat(parts);
}

/** The media type of a manifest from the response's Content-Type, or from its JSON when that is generic. */
export function manifestMediaType(contentType: string | null, bytes?: Uint8Array): string {
  const type = (contentType ?? "").split(";")[0]!.trim().toLowerCase();
  if (isManifestType(type)) return type;
  if (bytes) {
    try {
      const json = JSON.parse(new TextDecoder().decode(bytes)) as Record<string, unknown>;
      if (typeof json.mediaType === "string" && json.mediaType) return json.mediaType;
      if (json.schemaVersion === 1) return SCHEMA1_TYPES[0]!;
      if (Array.isArray(json.manifests)) return MEDIA_TYPES.ociIndex;
      if (json.config && Array.isArray(json.layers)) return MEDIA_TYPES.ociManifest;
    } catch {
      // not JSON
    }
  }
  return type;
}

/** A namespace's hosts as a {@link RegistryClient} keeps them. */
interface HostsEntry {
  loaded: Promise<LoadedHosts>;
  /** What the reading warned of. */
  warnings: string[];
  /** A check of `loaded` against the files, shared by the requests made meanwhile. */
  checking?: Promise<RegistryHost[]>;
}

/** Talks to OCI registries for one configuration (hosts, credentials). Share one per process: it caches tokens. */
export class RegistryClient {
  readonly #options: RegistryClientOptions;
  readonly #transport: Transport;
  readonly #authorizer: Authorizer;
  readonly #hosts = new Map<string, HostsEntry>();
  /** Hosts contacted so far, by `host[:port]`: token requests on their behalf use their TLS settings. */
  readonly #contacted = new Map<string, RegistryHost>();

  constructor(options: RegistryClientOptions = {}) {
    this.#options = options;
    this.#transport = new Transport(options.userAgent ? { userAgent: options.userAgent } : {});
    this.#authorizer = new Authorizer({
      ...(options.credentials ? { credentials: options.credentials } : {}),
      fetch: (url, init, registry) => {
        const known = this.#contacted.get(registry);
        if (!known) return fetch(url, init);
        // The token server gets the registry's TLS settings and headers (as containerd does).
        const realm = new URL(url);
        return this.#transport.request(
          {
            ...known,
            host: realm.host,
            scheme: realm.protocol === "http:" ? "http" : "https",
            httpFallback: false,
          },
          url,
          init,
        );
      },
    });
  }

  /**
   * The hosts for a registry namespace. They are read again once a file
   * they come from has changed (hosts.toml, its directory, a CA file), so
   * that a change under the hosts directory needs no restart, as in
   * containerd; telling costs a stat per file, shared by the requests made
   * at the same time (files changed in the last seconds are read again).
   */
  hosts(namespace: string): Promise<RegistryHost[]> {
    const entry = this.#hosts.get(namespace);
    if (!entry) return this.#loadHosts(namespace);
    entry.checking ??= entry.loaded.then(async (loaded) => {
      if (loaded.stamp !== undefined && await filesStamp(loaded.files) === loaded.stamp) {
        return loaded.hosts;
      }
      return await this.#loadHosts(namespace);
    }).finally(() => entry.checking = undefined);
    return entry.checking;
  }

  #loadHosts(namespace: string): Promise<RegistryHost[]> {
    const custom = this.#options.hosts;
    const previous = this.#hosts.get(namespace);
    const warnings: string[] = [];
    const loaded = custom
      ? custom(namespace).then((hosts) => ({ hosts, files: [], stamp: "" }))
      : loadRegistryHosts(namespace, { ...this.#options, warn: (m) => warnings.push(m) });
    const entry: HostsEntry = { loaded, warnings };
    this.#hosts.set(namespace, entry);
    // A file that failed is read again by the next request.
    loaded.catch(() => this.#hosts.get(namespace) === entry && this.#hosts.delete(namespace));
    return loaded.then((l) => {
      // Told once per change, not at each reading of the same file.
      if (warnings.join("\n") !== previous?.warnings.join("\n")) {
        for (const w of warnings) this.#options.warn?.(w);
      }
      return l.hosts;
    });
  }

  /** Releases the client's TLS connections. */
  close(): void {
    this.#transport.close();
  }

  async #request(ref: Reference, spec: RequestSpec): Promise<Attempt> {
    const all = await this.hosts(ref.domain);
    let hosts = all.filter((h) => h.capabilities.includes(spec.capability));
    if (spec.firstHostOnly) hosts = hosts.slice(0, 1);
    if (hosts.length === 0) {
      throw new NotFound(
        `${spec.what}: no host of registry ${ref.domain} is configured for ${spec.capability}`,
      );
    }
    const errors: { host: string; error: Error }[] = [];
    for (const host of hosts) {
      try {
        const attempt = await this.#requestHost(ref, host, spec);
        if (spec.accept(attempt.response.status)) return attempt;
        const err = await responseError(attempt.response, spec.what, host.host);
        errors.push({ host: host.host, error: err });
      } catch (err) {
        if (spec.signal?.aborted) throw spec.signal.reason;
        if (err instanceof DOMException && err.name === "AbortError") throw err;
        if (!(err instanceof TugError)) throw err;
        errors.push({ host: host.host, error: err });
      }
    }
    // The last host is the namespace's own server: its answer decides the error class; the others add context.
    const last = errors[errors.length - 1]!;
    if (errors.length === 1) throw last.error;
    const summary = errors.map((e) => `${e.host}: ${e.error.message}`).join("; ");
    const Cls = last.error.constructor as new (message: string, options?: ErrorOptions) => TugError;
    throw new Cls(`${spec.what} failed on every host (${summary})`, { cause: last.error });
  }

  async #requestHost(ref: Reference, host: RegistryHost, spec: RequestSpec): Promise<Attempt> {
    const url = new URL(`${this.#transport.baseUrl(host)}/${ref.path}${spec.suffix}`);
    if (host.mirror) url.searchParams.set("ns", ref.domain);
    for (const [k, v] of Object.entries(spec.query ?? {})) url.searchParams.set(k, v);
    return await this.#send(ref, host, url.href, spec);
  }

  /** Sends to an absolute URL on `host` (upload locations), with auth, retries and 401 handling. */
  async #send(
    ref: Reference,
    host: RegistryHost,
    url: string,
    spec: RequestSpec,
  ): Promise<Attempt> {
    this.#contacted.set(host.host, host);
    let scopes = [repositoryScope(ref.path, spec.push ? ["pull", "push"] : ["pull"])];
    let challenged = false;
    for (let attempt = 0;; attempt++) {
      const headers: Record<string, string> = { ...spec.headers };
      const signal = spec.signal ? { signal: spec.signal } : {};
      const auth = await this.#authorizer.authorization(host.host, scopes, signal);
      if (auth) headers.authorization = auth;
      const response = await this.#transport.request(host, url, {
        method: spec.method,
        headers,
        body: spec.body ? await spec.body() : null,
        ...signal,
      });
      if (response.status === 401 && !challenged) {
        challenged = true;
        await response.body?.cancel();
        scopes = await this.#authorizer.challenge(host.host, response, scopes, {
          ...(auth ? { sent: auth } : {}),
          ...signal,
        });
        continue;
      }
      if (response.status === 401 || response.status === 403) {
        const challenge = response.headers.get("www-authenticate") ?? "";
        const why = await this.#authorizer.describe(host.host, challenge);
        const { text } = await errorDetail(response);
        // With insufficient_scope, the body's "authentication required" would send users after
        // credentials that were accepted.
        const detail = text && challengeError(challenge) !== "insufficient_scope"
          ? ` (${text})`
          : "";
        throw new Unauthenticated(
          `access to ${spec.what} on registry ${host.host} denied: ${why}${detail}`,
        );
      }
      if (
        response.status === 405 && spec.method === "HEAD" && spec.suffix.includes("/manifests/")
      ) {
        // Registries without HEAD on manifests.
        await response.body?.cancel();
        spec = { ...spec, method: "GET" };
        continue;
      }
      const retriable = response.status === 429 || response.status === 408 ||
        response.status === 502 ||
        response.status === 503 || response.status === 504;
      if (retriable && attempt < 2 && (!spec.body || spec.method !== "PATCH")) {
        await response.body?.cancel();
        const after = Number(response.headers.get("retry-after"));
        await sleep(
          Number.isFinite(after) && after > 0 ? Math.min(after * 1000, 5000) : 250 * (attempt + 1),
          spec.signal,
        );
        continue;
      }
      return { response, host, url };
    }
  }

  /**
   * Resolves `ref` to the descriptor of its manifest or index: HEAD on the
   * resolve-capable hosts with the Accept list, falling back to GET when the
   * answer lacks a digest or size. GET bodies are verified against the
   * `Docker-Content-Digest` header and the reference's digest.
   */
  async resolve(ref: string | Reference, options: SignalOptions = {}): Promise<Resolved> {
    const reference = typeof ref === "string" ? parseReference(ref) : ref;
    const name = formatReference(reference);
    const object = referenceObject(reference);
    const what = `manifest ${name}`;
    const base: Omit<RequestSpec, "method"> = {
      capability: "resolve",
      suffix: `/manifests/${object}`,
      headers: { accept: MANIFEST_ACCEPT },
      accept: (s) => s >= 200 && s < 300,
      what,
      ...(options.signal ? { signal: options.signal } : {}),
    };
    const head = await this.#request(reference, { ...base, method: "HEAD" });
    await head.response.body?.cancel();
    const header = head.response.headers.get("docker-content-digest");
    const length = head.response.headers.get("content-length");
    let mediaType = manifestMediaType(head.response.headers.get("content-type"));
    let digest: Digest | undefined = reference.digest ?? (header || undefined);
    let size = length !== null && length !== "" ? Number(length) : NaN;
    if (header && reference.digest && header !== reference.digest) {
      throw new InvalidArgument(
        `resolve ${name} failed: digest mismatch: the registry says ${header}, the reference pins ${reference.digest}`,
      );
    }
    let manifest: Uint8Array | undefined;
    let host = head.host.host;
    if (digest === undefined || !Number.isFinite(size) || !isManifestType(mediaType)) {
      const got = await this.#sendGet(reference, head.host, head.url, { ...base, method: "GET" });
      host = got.host.host;
      manifest = await readLimited(got.response.body, MAX_MANIFEST_SIZE, what);
      mediaType = manifestMediaType(got.response.headers.get("content-type"), manifest);
      refuseSchema1(mediaType, name);
      const actual = digestOf(manifest, digest ? parseDigest(digest).algorithm : "sha256");
      const claimed = got.response.headers.get("docker-content-digest") || digest;
      if (claimed && claimed !== actual) {
        throw new InvalidArgument(
          `resolve ${name} failed: digest mismatch: expected ${claimed}, got ${actual}`,
        );
      }
      digest = actual;
      size = manifest.length;
    }
    refuseSchema1(mediaType, name);
    if (!isManifestType(mediaType)) {
      throw new InvalidArgument(
        `resolve ${name} failed: unsupported manifest media type "${mediaType}"`,
      );
    }
    if (size > MAX_MANIFEST_SIZE) {
      throw new InvalidArgument(
        `resolve ${name} failed: the manifest is ${size} bytes, more than ${MAX_MANIFEST_SIZE}`,
      );
    }
    parseDigest(digest);
    return {
      reference,
      name,
      descriptor: { mediaType, digest, size },
      ...(manifest ? { manifest } : {}),
      host,
    };
  }

  async #sendGet(
    ref: Reference,
    host: RegistryHost,
    url: string,
    spec: RequestSpec,
  ): Promise<Attempt> {
    const attempt = await this.#send(ref, host, url, spec);
    if (!spec.accept(attempt.response.status)) {
      throw await responseError(attempt.response, spec.what, host.host);
    }
    return attempt;
  }

  /** Fetches a manifest or index by descriptor and verifies its size and digest. */
  async fetchManifest(
    ref: Reference,
    desc: Descriptor,
    options: SignalOptions = {},
  ): Promise<Uint8Array> {
    refuseSchema1(desc.mediaType, formatReference(ref));
    if (desc.size > MAX_MANIFEST_SIZE) {
      throw new InvalidArgument(
        `fetch manifest ${desc.digest} failed: ${desc.size} bytes is more than ${MAX_MANIFEST_SIZE}`,
      );
    }
    const what = `manifest ${referenceName(ref)}@${desc.digest}`;
    const { response } = await this.#request(ref, {
      capability: "pull",
      suffix: `/manifests/${desc.digest}`,
      method: "GET",
      headers: {
        accept: isManifestType(desc.mediaType)
          ? `${desc.mediaType}, ${MANIFEST_ACCEPT}`
          : MANIFEST_ACCEPT,
      },
      accept: (s) => s === 200,
      what,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    const bytes = await readLimited(response.body, MAX_MANIFEST_SIZE, what);
    verifyBytes(bytes, desc, what);
    return bytes;
  }

  /**
   * Opens a download of a blob (`/blobs/<digest>`; manifests go through
   * `/manifests/<digest>`) from the first pull-capable host that has it.
   * With `offset`, asks for `Range: bytes=<offset>-`; the result says where
   * the body really starts (a server may ignore the range and send it all).
   * The caller verifies the digest (the content store does on commit).
   */
  async fetchBlob(
    ref: Reference,
    desc: Descriptor,
    options: SignalOptions & { offset?: number } = {},
  ): Promise<BlobResponse> {
    parseDigest(desc.digest);
    const offset = options.offset ?? 0;
    const manifest = isManifestType(desc.mediaType);
    const headers: Record<string, string> = {};
    if (manifest) headers.accept = `${desc.mediaType}, ${MANIFEST_ACCEPT}`;
    if (offset > 0) headers.range = `bytes=${offset}-`;
    const { response, host } = await this.#request(ref, {
      capability: "pull",
      suffix: `/${manifest ? "manifests" : "blobs"}/${desc.digest}`,
      method: "GET",
      headers,
      accept: (s) => s === 200 || (s === 206 && offset > 0),
      what: `blob ${desc.digest} of ${referenceName(ref)}`,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    if (!response.body) {
      throw new Unavailable(
        `fetch blob ${desc.digest} from ${host.host} failed: the response has no body`,
      );
    }
    if (response.status === 206) {
      const range = response.headers.get("content-range") ?? "";
      if (!range.startsWith(`bytes ${offset}-`)) {
        await response.body.cancel();
        throw new Unavailable(
          `fetch blob ${desc.digest} from ${host.host} failed: unexpected Content-Range "${range}" for offset ${offset}`,
        );
      }
      return { body: response.body, offset, host: host.host, response };
    }
    return { body: response.body, offset: 0, host: host.host, response };
  }

  // ---------------------------------------------------------------------------
  // Push primitives (used by push.ts). Push goes to the first push-capable host.

  /** True when the repository of `ref` has blob `digest` (HEAD). */
  async blobExists(ref: Reference, digest: Digest, options: SignalOptions = {}): Promise<boolean> {
    const { response } = await this.#request(ref, {
      capability: "push",
      firstHostOnly: true,
      push: true,
      suffix: `/blobs/${digest}`,
      method: "HEAD",
      accept: (s) => s === 200 || s === 404,
      what: `blob ${digest} of ${referenceName(ref)}`,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    await response.body?.cancel();
    return response.status === 200;
  }

  /**
   * Starts an upload (POST `/blobs/uploads/`); with `mount`, asks the
   * registry to mount the blob from another repository of the same
   * registry. Returns the upload location, or undefined when the mount
   * succeeded (201).
   */
  async startUpload(
    ref: Reference,
    options: SignalOptions & { mount?: { digest: Digest; from: string } } = {},
  ): Promise<string | undefined> {
    const query: Record<string, string> = {};
    if (options.mount) {
      query.mount = options.mount.digest;
      query.from = options.mount.from;
    }
    const { response, url } = await this.#request(ref, {
      capability: "push",
      firstHostOnly: true,
      push: true,
      suffix: "/blobs/uploads/",
      method: "POST",
      query,
      headers: { "content-length": "0" },
      accept: (s) => s === 202 || s === 201,
      what: `upload to ${referenceName(ref)}`,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    await response.body?.cancel();
    if (response.status === 201) return undefined;
    const location = response.headers.get("location");
    if (!location) {
      throw new Unavailable(
        `start upload to ${referenceName(ref)} failed: the registry gave no Location`,
      );
    }
    return new URL(location, url).href;
  }

  /**
   * Sends one request of an upload session to `location` (PATCH a chunk,
   * PUT the end) and returns the next location. `query` is added to the URL
   * (e.g. `digest`).
   */
  async uploadRequest(
    ref: Reference,
    location: string,
    spec: {
      method: "PATCH" | "PUT";
      body?: () => BodyInit | null | Promise<BodyInit | null>;
      headers?: Record<string, string>;
      query?: Record<string, string>;
      what: string;
    } & SignalOptions,
  ): Promise<string | undefined> {
    const hosts = (await this.hosts(ref.domain)).filter((h) => h.capabilities.includes("push"));
    const host = hosts[0];
    if (!host) {
      throw new NotFound(`${spec.what}: no host of registry ${ref.domain} is configured for push`);
    }
    const url = new URL(location);
    for (const [k, v] of Object.entries(spec.query ?? {})) url.searchParams.set(k, v);
    const requestSpec: RequestSpec = {
      capability: "push",
      push: true,
      suffix: "",
      method: spec.method,
      headers: spec.headers ?? {},
      ...(spec.body ? { body: spec.body } : {}),
      accept: (s) => s === 201 || s === 202 || s === 204,
      what: spec.what,
      ...(spec.signal ? { signal: spec.signal } : {}),
    };
    let response: Response;
    try {
      ({ response } = await this.#sendGet(ref, host, url.href, requestSpec));
    } catch (err) {
      // The transport names the host only: say which upload it was.
      if (err instanceof Unavailable) {
        throw new Unavailable(`${spec.what} failed: ${err.message}`, { cause: err });
      }
      throw err;
    }
    await response.body?.cancel();
    const next = response.headers.get("location");
    return next ? new URL(next, url).href : undefined;
  }

  /** PUTs a manifest under `object` (a tag or its digest); returns the digest the registry reports. */
  async putManifest(
    ref: Reference,
    object: string,
    manifest: { mediaType: string; bytes: Uint8Array },
    options: SignalOptions = {},
  ): Promise<Digest | undefined> {
    const { response } = await this.#request(ref, {
      capability: "push",
      firstHostOnly: true,
      push: true,
      suffix: `/manifests/${object}`,
      method: "PUT",
      headers: { "content-type": manifest.mediaType },
      body: () => manifest.bytes as Uint8Array<ArrayBuffer>,
      accept: (s) => s === 201 || s === 200 || s === 202,
      what: `manifest ${referenceName(ref)}:${object}`,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    await response.body?.cancel();
    return response.headers.get("docker-content-digest") ?? undefined;
  }
}

/** Throws InvalidArgument unless `bytes` has the descriptor's size and digest. */
export function verifyBytes(bytes: Uint8Array, desc: Descriptor, what: string): void {
  if (bytes.length !== desc.size) {
    throw new InvalidArgument(
      `verify ${what} failed: size mismatch: expected ${desc.size} bytes, got ${bytes.length}`,
    );
  }
  const actual = digestOf(bytes, parseDigest(desc.digest).algorithm);
  if (actual !== desc.digest) {
    throw new InvalidArgument(
      `verify ${what} failed: digest mismatch: expected ${desc.digest}, got ${actual}`,
    );
  }
}
