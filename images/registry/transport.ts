/**
 * The HTTP layer of the registry client: one request to one registry host
 * with that host's TLS settings, redirects followed by hand (credentials are
 * dropped when a redirect leaves the host, e.g. to a blob store), and
 * connection failures turned into Unavailable errors naming the host.
 *
 * TLS: extra CAs and client certificates go through `Deno.createHttpClient`
 * (`caCerts`, `cert`/`key`). Deno's fetch has no per-client switch to skip
 * certificate verification (only the process-wide
 * `--unsafely-ignore-certificate-errors` flag), so hosts with `skip_verify`
 * are reached through `node:https` with `rejectUnauthorized: false`, which
 * Deno supports; that path streams request and response bodies the same way.
 *
 * @module
 */

import { InvalidArgument, Unavailable } from "../../errors.ts";
import { VERSION } from "../../version.ts";
import type { HostTls, RegistryHost } from "./hosts.ts";

const MAX_REDIRECTS = 10;

/**
 * Sends requests to registry hosts; one per client, it keeps a TLS client
 * per host and TLS files, made again when what the files hold changes.
 */
export class Transport {
  readonly #clients = new Map<string, { tls: string; client: Deno.HttpClient }>();
  readonly #fellBack = new Set<string>();
  readonly #userAgent: string;

  constructor(options: { userAgent?: string } = {}) {
    this.#userAgent = options.userAgent ?? `tug/${VERSION}`;
  }

  /** The base URL of `host`'s API (`scheme://host/v2`), after any HTTPS → HTTP fallback learnt so far. */
  baseUrl(host: RegistryHost): string {
    const scheme = this.#usesHttp(host) ? "http" : host.scheme;
    return `${scheme}://${host.host}${host.path}`;
  }

  /**
   * Sends `init` to `url` (on `host`) with the host's headers and TLS
   * settings and follows redirects. Throws Unavailable when the host cannot
   * be reached.
   */
  async request(host: RegistryHost, url: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    for (const [key, values] of Object.entries(host.header)) {
      for (const v of values) headers.append(key, v);
    }
    if (!headers.has("user-agent")) headers.set("user-agent", this.#userAgent);
    let target = new URL(url);
    if (this.#usesHttp(host) && target.protocol === "https:" && target.host === host.host) {
      target.protocol = "http:";
    }
    let method = init.method ?? "GET";
    let body = init.body;
    for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
      const onHost = target.host === host.host;
      let res: Response;
      try {
        res = await this.#send(onHost ? host : undefined, target, {
          ...init,
          method,
          headers,
          body: body ?? null,
        });
      } catch (err) {
        // A request given up (the pull's client went away, the daemon stops) is no connection failure.
        if (err instanceof InvalidArgument || isAbort(err) || init.signal?.aborted) throw err;
        if (onHost && host.httpFallback && target.protocol === "https:") {
          // containerd's HTTP fallback: the host may speak plain HTTP only. (Requests sent at the
          // same time all fail over HTTPS: each retries, whichever learnt it first.)
          this.#fellBack.add(host.host);
          target = new URL(target.href);
          target.protocol = "http:";
          hop--;
          continue;
        }
        // With a body, the connection may have been made and broken off while sending.
        const verb = body ? "send to" : "connect to";
        throw new Unavailable(
          `${verb} registry ${target.host} failed: ${describeFetchError(err)}`,
          { cause: err },
        );
      }
      if (res.status < 300 || res.status >= 400 || res.status === 304) return res;
      const location = res.headers.get("location");
      if (!location) return res;
      await res.body?.cancel();
      const next = new URL(location, target);
      if (next.origin !== target.origin) headers.delete("authorization");
      if (res.status === 303 || ((res.status === 301 || res.status === 302) && method === "POST")) {
        method = method === "HEAD" ? "HEAD" : "GET";
        body = undefined;
        headers.delete("content-type");
        headers.delete("content-length");
      }
      target = next;
    }
    throw new Unavailable(
      `request to registry ${host.host} failed: more than ${MAX_REDIRECTS} redirects`,
    );
  }

  /** True when `host` may fall back to plain HTTP and did (a configuration read since may not let it). */
  #usesHttp(host: RegistryHost): boolean {
    return host.httpFallback && this.#fellBack.has(host.host);
  }

  async #send(host: RegistryHost | undefined, url: URL, init: RequestInit): Promise<Response> {
    if (host?.skipVerify && url.protocol === "https:") {
      return await nodeRequest(url, init, host.tls);
    }
    const client = host && url.protocol === "https:" ? this.#client(host) : undefined;
    return await fetch(url, { ...init, redirect: "manual", ...(client ? { client } : {}) });
  }

  /**
   * The TLS client for `host` with its certificates. When what its files
   * hold has changed (a CA rotated), the previous client is closed: the
   * requests it started go on (Deno keeps their connection), new ones use
   * the new client. Synchronous, so no close comes between this and fetch.
   */
  #client(host: RegistryHost): Deno.HttpClient | undefined {
    const tls = host.tls;
    if (tls.ca.length === 0 && !tls.cert) return undefined;
    const slot = JSON.stringify([host.host, host.caFiles, host.clientPairs]);
    const held = JSON.stringify([tls.ca, tls.cert ?? "", tls.key ?? ""]);
    const cached = this.#clients.get(slot);
    if (cached?.tls === held) return cached.client;
    let client: Deno.HttpClient;
    try {
      client = Deno.createHttpClient({
        ...(tls.ca.length ? { caCerts: tls.ca } : {}),
        ...(tls.cert && tls.key ? { cert: tls.cert, key: tls.key } : {}),
      });
    } catch (err) {
      throw new InvalidArgument(
        `configure TLS for registry ${host.host} failed: ${describeFetchError(err)}`,
        { cause: err },
      );
    }
    cached?.client.close();
    this.#clients.set(slot, { tls: held, client });
    return client;
  }

  /** Closes the TLS clients. */
  close(): void {
    for (const c of this.#clients.values()) c.client.close();
    this.#clients.clear();
  }
}

function isAbort(err: unknown): boolean {
  return err instanceof DOMException && (err.name === "AbortError" || err.name === "TimeoutError");
}

/** The most telling message of a fetch error (Deno nests the cause): its message and its causes'. */
export function describeFetchError(err: unknown): string {
  const parts: string[] = [];
  let e: unknown = err;
  for (let depth = 0; e && depth < 4; depth++) {
    const msg = e instanceof Error ? e.message : String(e);
    if (msg && !parts.includes(msg)) parts.push(msg);
    e = e instanceof Error ? e.cause : undefined;
  }
  return parts.join(": ").replace(/\s+/g, " ").slice(0, 400) || "unknown error";
}

/**
 * One request through node:https (for hosts whose certificates are not
 * verified). `node:https` is imported here, when first needed: importing a
 * `node:` module sets up Deno's Node compatibility layer (megabytes of RSS).
 */
async function nodeRequest(url: URL, init: RequestInit, tls: HostTls): Promise<Response> {
  const [{ default: https }, { Readable }] = await Promise.all([
    import("node:https"),
    import("node:stream"),
  ]);
  return await new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    new Headers(init.headers).forEach((v, k) => headers[k] = v);
    const req = https.request(url, {
      method: init.method ?? "GET",
      headers,
      rejectUnauthorized: false,
      ...(tls.ca.length ? { ca: tls.ca } : {}),
      ...(tls.cert ? { cert: tls.cert } : {}),
      ...(tls.key ? { key: tls.key } : {}),
    }, (res) => {
      const h = new Headers();
      for (const [k, v] of Object.entries(res.headers)) {
        if (Array.isArray(v)) { for (const x of v) h.append(k, x); }
        else if (v !== undefined) h.set(k, String(v));
      }
      const status = res.statusCode ?? 500;
      const nullBody = init.method === "HEAD" || status === 204 || status === 304;
      if (nullBody) res.resume();
      resolve(
        new Response(
          nullBody ? null : Readable.toWeb(res) as unknown as ReadableStream<Uint8Array>,
          {
            status,
            statusText: res.statusMessage ?? "",
            headers: h,
          },
        ),
      );
    });
    req.on("error", reject);
    const signal = init.signal;
    if (signal) {
      if (signal.aborted) req.destroy(new DOMException("aborted", "AbortError"));
      signal.addEventListener(
        "abort",
        () => req.destroy(new DOMException("aborted", "AbortError")),
        { once: true },
      );
    }
    const body = init.body;
    if (body === null || body === undefined) {
      req.end();
    } else if (body instanceof ReadableStream) {
      Readable.fromWeb(body as import("node:stream/web").ReadableStream).pipe(req);
    } else if (typeof body === "string" || body instanceof Uint8Array) {
      req.end(body);
    } else {
      reject(new InvalidArgument("send request failed: unsupported request body type"));
    }
  });
}
