/**
 * Registry authentication: anonymous, HTTP basic, and bearer tokens obtained
 * from the token endpoint a `WWW-Authenticate: Bearer realm=…,service=…,scope=…`
 * challenge names (the Docker registry token protocol). Tokens are cached per
 * registry host and scope set until they expire (`expires_in`, 60 s when the
 * server gives none); concurrent requests for the same token share one fetch.
 * A token fetch is cancelled with the request that needs it: a request whose
 * signal aborts stops waiting at once, and the fetch itself is aborted once
 * every request waiting for it has given up.
 *
 * @module
 */

import { Unauthenticated, Unavailable } from "../../errors.ts";
import { describeFetchError } from "./transport.ts";

/** A user name and password (or token) for a registry. */
export interface Credentials {
  username: string;
  password: string;
}

/** Finds the credentials for a registry host (`host[:port]` as contacted); undefined means anonymous. */
export type CredentialsFn = (
  host: string,
) => Credentials | undefined | Promise<Credentials | undefined>;

/** One challenge of a `WWW-Authenticate` header. */
export interface Challenge {
  /** Lowercase scheme, e.g. `bearer` or `basic`. */
  scheme: string;
  params: Record<string, string>;
}

/** Sends an HTTP request for the authorizer: a token request on behalf of registry `host` (`init.signal` cancels it). */
export type AuthFetch = (url: string, init: RequestInit, host: string) => Promise<Response>;

/** Options for {@link Authorizer}. */
export interface AuthorizerOptions {
  credentials?: CredentialsFn;
  /** The transport for token requests. */
  fetch: AuthFetch;
  /** Clock in milliseconds (tests). */
  now?: () => number;
}

/**
 * Parses a `WWW-Authenticate` header into its challenges, e.g.
 * `Bearer realm="https://auth.example/token",service="reg",scope="repository:a:pull"`.
 */
export function parseChallenges(header: string): Challenge[] {
  const challenges: Challenge[] = [];
  let i = 0;
  const n = header.length;
  const skipSpace = () => {
    while (i < n && (header[i] === " " || header[i] === "\t")) i++;
  };
  const token = () => {
    const start = i;
    while (i < n && !/[\s,=]/.test(header[i]!)) i++;
    return header.slice(start, i);
  };
  let current: Challenge | undefined;
  while (i < n) {
    skipSpace();
    if (header[i] === ",") {
      i++;
      continue;
    }
    const start = i;
    const word = token();
    if (word === "") {
      i++;
      continue;
    }
    skipSpace();
    if (header[i] === "=" && current) {
      i++;
      skipSpace();
      let value: string;
      if (header[i] === '"') {
        i++;
        value = "";
        while (i < n && header[i] !== '"') {
          if (header[i] === "\\" && i + 1 < n) i++;
          value += header[i];
          i++;
        }
        i++;
      } else {
        value = token();
      }
      current.params[word.toLowerCase()] = value;
    } else {
      // A new challenge: a scheme, perhaps followed by parameters.
      current = { scheme: header.slice(start, start + word.length).toLowerCase(), params: {} };
      challenges.push(current);
    }
  }
  return challenges;
}

interface HostAuth {
  scheme: "basic" | "bearer";
  realm?: string;
  service?: string;
}

interface CachedToken {
  token: string;
  expiresAt: number;
}

/** A token fetch that requests share, aborted when the last one waiting for it gives up. */
interface TokenFetch {
  key: string;
  promise: Promise<string>;
  controller: AbortController;
  /** Requests waiting with a signal, each of which may give up. */
  waiting: number;
  /** True once a request without a signal waits for it: then it is never aborted. */
  pinned: boolean;
}

function basicHeader(c: Credentials): string {
  const bytes = new TextEncoder().encode(`${c.username}:${c.password}`);
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return `Basic ${btoa(bin)}`;
}

/** Options for {@link Authorizer.authorization}. */
export interface AuthorizationOptions {
  /** Cancels the token fetch the request waits for: it rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** Options for {@link Authorizer.challenge}. */
export interface ChallengeOptions extends AuthorizationOptions {
  /** The Authorization header the refused request carried; undefined when it carried none. */
  sent?: string;
}

/** Keeps what each registry host asked for and the tokens obtained, and answers with Authorization headers. */
export class Authorizer {
  readonly #credentials: CredentialsFn | undefined;
  readonly #fetch: AuthFetch;
  readonly #now: () => number;
  readonly #hosts = new Map<string, HostAuth>();
  readonly #tokens = new Map<string, CachedToken>();
  readonly #inflight = new Map<string, TokenFetch>();

  constructor(options: AuthorizerOptions) {
    this.#credentials = options.credentials;
    this.#fetch = options.fetch;
    this.#now = options.now ?? Date.now;
  }

  /** The Authorization header for a request to `host` needing `scopes`, or undefined (anonymous). */
  async authorization(
    host: string,
    scopes: string[],
    options: AuthorizationOptions = {},
  ): Promise<string | undefined> {
    const auth = this.#hosts.get(host);
    if (!auth) return undefined;
    if (auth.scheme === "basic") {
      const creds = await this.#credentials?.(host);
      return creds ? basicHeader(creds) : undefined;
    }
    return `Bearer ${await this.#token(host, auth, scopes, false, options.signal)}`;
  }

  /**
   * Learns from a 401 response of `host`: remembers the challenge and, for
   * bearer, fetches a fresh token for `scopes` plus the scope the server
   * asked for. Returns the scopes to use on the retry. Throws Unauthenticated
   * when there is nothing to retry with (basic auth without credentials, or
   * no challenge tug understands), or when the request already carried the
   * basic credentials (`options.sent`): only then were they refused. A
   * request sent before the scheme was known carried none, and is retried.
   */
  async challenge(
    host: string,
    response: Response,
    scopes: string[],
    options: ChallengeOptions = {},
  ): Promise<string[]> {
    const header = response.headers.get("www-authenticate") ?? "";
    const challenges = parseChallenges(header);
    const bearer = challenges.find((c) => c.scheme === "bearer" && c.params.realm);
    const basic = challenges.find((c) => c.scheme === "basic");
    if (bearer) {
      const auth: HostAuth = { scheme: "bearer", realm: bearer.params.realm! };
      if (bearer.params.service !== undefined) auth.service = bearer.params.service;
      this.#hosts.set(host, auth);
      const wanted = mergeScopes(scopes, (bearer.params.scope ?? "").split(" ").filter((s) => s));
      await this.#token(host, auth, wanted, true, options.signal);
      return wanted;
    }
    if (basic) {
      const creds = await this.#credentials?.(host);
      if (!creds) {
        throw new Unauthenticated(
          `authenticate to registry ${host} failed: it asks for basic credentials and none were given`,
        );
      }
      if (options.sent !== undefined && /^basic /i.test(options.sent)) {
        throw new Unauthenticated(
          `authenticate to registry ${host} failed: the credentials of ${creds.username} were refused`,
        );
      }
      this.#hosts.set(host, { scheme: "basic" });
      return scopes;
    }
    throw new Unauthenticated(
      `authenticate to registry ${host} failed: unsupported challenge ${
        JSON.stringify(header || "(none)")
      }`,
    );
  }

  /**
   * Why `host` may have refused a request that carried our best credentials,
   * for error messages, from the `WWW-Authenticate` header of its answer:
   * with `error="insufficient_scope"` the credentials were accepted (a token
   * was issued) but do not grant the access the challenge names.
   */
  async describe(host: string, challengeHeader = ""): Promise<string> {
    const creds = await this.#credentials?.(host);
    const bearer = parseChallenges(challengeHeader).find((c) => c.scheme === "bearer");
    if (bearer?.params.error === "insufficient_scope") {
      const scopes = (bearer.params.scope ?? "").split(" ").filter((s) => s);
      const asked = scopes.length > 0
        ? scopes.map(describeScope).join(" and ")
        : "the access asked for";
      const who = creds
        ? `the credentials of ${creds.username} were accepted but do`
        : "no credentials were given, and anonymous access does";
      return `${who} not grant ${asked} (insufficient_scope)`;
    }
    return creds
      ? `the credentials of ${creds.username} were refused`
      : "no credentials were given";
  }

  async #token(
    host: string,
    auth: HostAuth,
    scopes: string[],
    fresh: boolean,
    signal: AbortSignal | undefined,
  ): Promise<string> {
    signal?.throwIfAborted();
    const key = `${host} ${[...scopes].sort().join(" ")}`;
    const cached = this.#tokens.get(key);
    if (!fresh && cached && cached.expiresAt > this.#now()) return cached.token;
    let running = this.#inflight.get(key);
    if (!running) {
      const controller = new AbortController();
      const shared: TokenFetch = {
        key,
        controller,
        waiting: 0,
        pinned: false,
        promise: this.#fetchToken(host, auth, scopes, controller.signal).then(
          ({ token, expiresAt }) => {
            this.#tokens.set(key, { token, expiresAt });
            return token;
          },
        ).finally(() => this.#forget(shared)),
      };
      running = shared;
      this.#inflight.set(key, running);
    }
    return await this.#wait(running, signal);
  }

  /** Waits for a shared token fetch, or until `signal` aborts (then rejects with its reason). */
  #wait(running: TokenFetch, signal: AbortSignal | undefined): Promise<string> {
    if (!signal) {
      running.pinned = true;
      return running.promise;
    }
    running.waiting++;
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        running.waiting--;
        if (running.waiting === 0 && !running.pinned) {
          // Nobody waits any more: end the fetch (and its connection), and let the next request start anew.
          this.#forget(running);
          running.controller.abort(signal.reason);
        }
        reject(signal.reason);
      };
      signal.addEventListener("abort", onAbort, { once: true });
      running.promise.then(
        (token) => {
          signal.removeEventListener("abort", onAbort);
          resolve(token);
        },
        (err) => {
          signal.removeEventListener("abort", onAbort);
          reject(err);
        },
      );
    });
  }

  #forget(running: TokenFetch): void {
    if (this.#inflight.get(running.key) === running) this.#inflight.delete(running.key);
  }

  async #fetchToken(
    host: string,
    auth: HostAuth,
    scopes: string[],
    signal: AbortSignal,
  ): Promise<CachedToken> {
    let url: URL;
    try {
      url = new URL(auth.realm!);
    } catch {
      throw new Unauthenticated(
        `authenticate to registry ${host} failed: token realm "${auth.realm}" is not a URL`,
      );
    }
    if (auth.service !== undefined) url.searchParams.set("service", auth.service);
    for (const s of scopes) url.searchParams.append("scope", s);
    const creds = await this.#credentials?.(host);
    const headers: Record<string, string> = { accept: "application/json" };
    if (creds) headers.authorization = basicHeader(creds);
    const started = this.#now();
    const server = `token server ${url.origin}${url.pathname}`;
    let res: Response;
    try {
      res = await this.#fetch(url.href, { headers, signal }, host);
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      // The transport says "connect to registry <realm's host> failed: …": the realm is no registry.
      throw new Unavailable(
        `fetch token for registry ${host} from ${server} failed: ${
          describeFetchError(
            err instanceof Unavailable && err.cause !== undefined ? err.cause : err,
          )
        }`,
        { cause: err },
      );
    }
    if (!res.ok) {
      const text = await res.text().catch(() => "");
      const detail = text.trim().slice(0, 200);
      const who = creds
        ? `the credentials of ${creds.username} were refused`
        : "anonymous access was refused";
      const why = res.status === 401 || res.status === 403 ? who : `status ${res.status}`;
      throw new Unauthenticated(
        `fetch token for registry ${host} from ${server} failed: ${why}${
          detail ? ` (${detail})` : ""
        }`,
      );
    }
    let body: { token?: string; access_token?: string; expires_in?: number; issued_at?: string };
    try {
      body = await res.json();
    } catch (err) {
      throw new Unauthenticated(
        `fetch token for registry ${host} failed: the token server's answer is not JSON`,
        { cause: err },
      );
    }
    const token = body.token || body.access_token;
    if (!token) {
      throw new Unauthenticated(
        `fetch token for registry ${host} failed: the token server's answer holds no token`,
      );
    }
    const expiresIn = typeof body.expires_in === "number" && body.expires_in > 0
      ? body.expires_in
      : 60;
    // Renew a little early so a token does not expire between our check and the registry's.
    return { token, expiresAt: started + Math.max(expiresIn - 5, 1) * 1000 };
  }
}

/** The `error` parameter of a `WWW-Authenticate` header's bearer challenge (`insufficient_scope`, `invalid_token`), if any. */
export function challengeError(header: string): string | undefined {
  return parseChallenges(header).find((c) => c.scheme === "bearer")?.params.error;
}

/** A scope for messages: `repository:a/b:push,pull` is `pull,push on repository a/b` (actions sorted). */
function describeScope(scope: string): string {
  const first = scope.indexOf(":");
  const last = scope.lastIndexOf(":");
  if (first <= 0 || last <= first) return scope;
  const actions = scope.slice(last + 1).split(",").filter((a) => a).sort().join(",");
  return `${actions} on ${scope.slice(0, first)} ${scope.slice(first + 1, last)}`;
}

/** The union of scope lists, each once, with actions of the same resource merged (`pull` + `push` → `pull,push`). */
export function mergeScopes(a: string[], b: string[]): string[] {
  const byResource = new Map<string, Set<string>>();
  for (const scope of [...a, ...b]) {
    const colon = scope.lastIndexOf(":");
    if (colon <= 0) continue;
    const resource = scope.slice(0, colon);
    const actions = byResource.get(resource) ?? new Set<string>();
    for (const action of scope.slice(colon + 1).split(",")) if (action) actions.add(action);
    byResource.set(resource, actions);
  }
  return [...byResource].map(([r, actions]) => `${r}:${[...actions].sort().join(",")}`).sort();
}

/** The scope of a repository, e.g. `repository:library/busybox:pull`. */
export function repositoryScope(path: string, actions: ("pull" | "push")[]): string {
  return `repository:${path}:${actions.join(",")}`;
}
