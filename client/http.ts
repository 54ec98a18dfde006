/**
 * The client's transport to the daemon's unix socket: JSON requests and
 * NDJSON streams over one plain connection each (client/exchange.ts),
 * uploads and the export's download through `fetch`
 * (`Deno.createHttpClient` with a unix proxy); the namespace
 * header, timeouts, NDJSON streams, and errors decoded back into tug's error
 * classes. Loads nothing but `errors.ts` and the HTTP parser, so the CLI
 * starts fast.
 *
 * @module
 */

import { ERROR_CLASSES, Internal, InvalidArgument, TugError, Unavailable } from "../errors.ts";
import { type Exchange, exchange, openExchange, readBody } from "./exchange.ts";
import { API_PREFIX, DEFAULT_ADDRESS, DEFAULT_NAMESPACE, NAMESPACE_HEADER } from "./types.ts";

/** Options for {@link TugClient} and {@link Transport}. */
export interface TugClientOptions {
  /** The daemon's socket (default `/run/tug/tug.sock`). */
  address?: string;
  /** The namespace requests work in (default `default`). */
  namespace?: string;
  /** Milliseconds a request (streams included) may take; 0 or absent: no limit. */
  timeout?: number;
}

/** A query string's values; undefined and false are left out, true is `1`. */
export type Query = Record<string, string | string[] | boolean | undefined>;

/** Options of one request. */
export interface RequestOptions {
  query?: Query;
  /** Sent as JSON. */
  json?: unknown;
  /** Sent as is (a tar, for imports). */
  body?: ReadableStream<Uint8Array> | Uint8Array;
  /** Cancels the request. */
  signal?: AbortSignal;
  /** The namespace (default: the client's). */
  namespace?: string;
}

/** Turns an error body (or a failed response without one) into the error class it names. */
export function decodeError(status: number, body: unknown, what: string): TugError {
  const e = (body as { error?: { code?: unknown; message?: unknown } } | null)?.error;
  if (e && typeof e.code === "string" && typeof e.message === "string") {
    const Cls = ERROR_CLASSES[e.code] ?? Internal;
    return new Cls(e.message);
  }
  return new Internal(`${what}: the daemon answered ${status} without an error body`);
}

/** The URL of an API path with its query. */
function requestUrl(path: string, query: Query | undefined): URL {
  // An address literal: any host name would be looked up in DNS before the unix socket is
  // used (a round trip per command, and 5 s when the resolver is slow to answer).
  const url = new URL(`http://127.0.0.1${API_PREFIX}${path}`);
  for (const [k, v] of Object.entries(query ?? {})) {
    if (v === undefined || v === false) continue;
    for (const item of Array.isArray(v) ? v : [v === true ? "1" : v]) {
      url.searchParams.append(k, item);
    }
  }
  return url;
}

/** The error a non-2xx answer names; `body` parses its JSON (an answer that is not JSON names none). */
async function answerError(status: number, body: () => unknown, what: string): Promise<TugError> {
  let parsed: unknown;
  try {
    parsed = await body();
  } catch {
    parsed = undefined;
  }
  return decodeError(status, parsed, what);
}

async function parseJson<T>(
  method: string,
  path: string,
  parse: () => unknown,
): Promise<T> {
  try {
    return await parse() as T;
  } catch (err) {
    if (err instanceof TugError) throw err;
    throw new Internal(
      `${method} ${path}: the daemon's answer is not JSON: ${(err as Error).message}`,
    );
  }
}

function describeTimeout(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

/**
 * `body` as fetch sends it, noting whether any of it was read (the request
 * reached the daemon) and the error reading it gave, if any.
 */
function watchBody(body: ReadableStream<Uint8Array>): {
  stream: ReadableStream<Uint8Array>;
  started: boolean;
  readError: unknown;
} {
  const reader = body.getReader();
  const state = {
    started: false,
    readError: undefined as unknown,
    stream: new ReadableStream<Uint8Array>({
      async pull(controller) {
        state.started = true;
        let next: ReadableStreamReadResult<Uint8Array>;
        try {
          next = await reader.read();
        } catch (err) {
          state.readError = err;
          controller.error(err);
          return;
        }
        if (next.done) controller.close();
        else controller.enqueue(next.value);
      },
      cancel: (reason) => reader.cancel(reason),
    }),
  };
  return state;
}

/** The HTTP transport to one daemon (see the module documentation). */
export class Transport {
  readonly address: string;
  readonly namespace: string;
  readonly timeout: number;
  #client: Deno.HttpClient | undefined;

  constructor(options: TugClientOptions = {}) {
    this.address = options.address ?? DEFAULT_ADDRESS;
    this.namespace = options.namespace ?? DEFAULT_NAMESPACE;
    this.timeout = options.timeout ?? 0;
  }

  get #http(): Deno.HttpClient {
    this.#client ??= Deno.createHttpClient({ proxy: { transport: "unix", path: this.address } });
    return this.#client;
  }

  /** Sends a request; resolves to a 2xx response, or throws the error the daemon named. */
  async request(method: string, path: string, options: RequestOptions = {}): Promise<Response> {
    const url = requestUrl(path, options.query);
    const headers = new Headers({ [NAMESPACE_HEADER]: options.namespace ?? this.namespace });
    let body: BodyInit | undefined;
    if (options.json !== undefined) {
      headers.set("content-type", "application/json");
      body = JSON.stringify(options.json);
    } else if (options.body !== undefined) {
      headers.set("content-type", "application/x-tar");
      body = options.body as BodyInit;
    }
    // A streamed body is watched: a failure once it is being sent is not a daemon out of reach.
    const sending = options.body instanceof ReadableStream ? watchBody(options.body) : undefined;
    if (sending) body = sending.stream;
    const { signal, timeoutSignal } = this.#signals(options.signal);
    const what = `${method} ${url.pathname}`;
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers,
        client: this.#http,
        ...(body !== undefined ? { body } : {}),
        ...(signal ? { signal } : {}),
      });
    } catch (err) {
      if (sending?.readError) {
        const cause = sending.readError;
        throw new InvalidArgument(
          `Read the input of ${what}: ${cause instanceof Error ? cause.message : String(cause)}`,
          { cause },
        );
      }
      throw this.#transportError(err, what, timeoutSignal, sending?.started);
    }
    if (res.ok) return timeoutSignal ? this.#guardBody(res, what, timeoutSignal) : res;
    throw await answerError(res.status, () => res.json(), what);
  }

  /**
   * Sends a request and parses the JSON answer (undefined for 204). Without
   * a streamed body, over one plain connection (client/exchange.ts: a
   * process's first `fetch` costs ~10 ms); with one, through `fetch`.
   */
  async json<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    if (options.body !== undefined) {
      const res = await this.request(method, path, options);
      if (res.status === 204) {
        await res.body?.cancel();
        return undefined as T;
      }
      return parseJson<T>(method, path, () => res.json());
    }
    const { answer, what } = await this.#plain(method, path, options, exchange);
    const text = new TextDecoder().decode(answer.body);
    if (answer.status < 200 || answer.status > 299) {
      throw await answerError(answer.status, () => JSON.parse(text), what);
    }
    if (answer.status === 204) return undefined as T;
    return parseJson<T>(method, path, () => JSON.parse(text));
  }

  /**
   * Sends a request whose answer is an NDJSON stream (pull and push
   * progress, events, logs), over one plain connection. Resolves once the
   * daemon has answered (rejects with the error it named), to the messages,
   * one per line. Reading fails with Unavailable when the timeout ends the
   * stream or the connection is lost; leaving the loop closes the connection.
   */
  async lines<T>(
    method: string,
    path: string,
    options: Omit<RequestOptions, "body"> = {},
  ): Promise<AsyncGenerator<T>> {
    const { answer, what, timeoutSignal } = await this.#plain(method, path, options, openExchange);
    if (answer.status >= 200 && answer.status <= 299) {
      return this.#messages<T>(answer.body, what, timeoutSignal);
    }
    let body: Uint8Array;
    try {
      body = await readBody(answer.body);
    } catch (err) {
      throw this.#transportError(err, what, timeoutSignal);
    }
    const text = new TextDecoder().decode(body);
    throw await answerError(answer.status, () => JSON.parse(text), what);
  }

  async *#messages<T>(
    body: AsyncGenerator<Uint8Array>,
    what: string,
    timeout: AbortSignal | undefined,
  ): AsyncGenerator<T> {
    const decoder = new TextDecoder();
    let buffer = "";
    try {
      for (;;) {
        let next: IteratorResult<Uint8Array>;
        try {
          next = await body.next();
        } catch (err) {
          if (timeout?.aborted) throw this.#transportError(err, what, timeout);
          throw new Unavailable(
            `Lost the connection to the tug daemon at ${this.address}: ${(err as Error).message}`,
            { cause: err },
          );
        }
        if (next.done) break;
        buffer += decoder.decode(next.value, { stream: true });
        let i: number;
        while ((i = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, i).trim();
          buffer = buffer.slice(i + 1);
          if (line) yield JSON.parse(line) as T;
        }
      }
      buffer += decoder.decode();
      if (buffer.trim()) yield JSON.parse(buffer) as T;
    } finally {
      await body.return(undefined);
    }
  }

  /**
   * Sends a request over a plain connection with `send` (the namespace
   * header, a JSON body, the signals), turning a failure to reach the daemon
   * into the error that names it.
   */
  async #plain<A>(
    method: string,
    path: string,
    options: Omit<RequestOptions, "body">,
    send: (x: Exchange) => Promise<A>,
  ): Promise<{ answer: A; what: string; timeoutSignal: AbortSignal | undefined }> {
    const url = requestUrl(path, options.query);
    const what = `${method} ${url.pathname}`;
    const { signal, timeoutSignal } = this.#signals(options.signal);
    const headers: Record<string, string> = {
      [NAMESPACE_HEADER]: options.namespace ?? this.namespace,
    };
    let body: Uint8Array | undefined;
    if (options.json !== undefined) {
      headers["content-type"] = "application/json";
      body = new TextEncoder().encode(JSON.stringify(options.json));
    }
    try {
      const answer = await send({
        socket: this.address,
        method,
        target: url.pathname + url.search,
        headers,
        ...(body !== undefined ? { body } : {}),
        ...(signal ? { signal } : {}),
      });
      return { answer, what, timeoutSignal };
    } catch (err) {
      throw this.#transportError(err, what, timeoutSignal);
    }
  }

  /** The request's signal: the caller's, the client's timeout, or both. */
  #signals(caller: AbortSignal | undefined): {
    signal: AbortSignal | undefined;
    timeoutSignal: AbortSignal | undefined;
  } {
    const signals: AbortSignal[] = [];
    let timeoutSignal: AbortSignal | undefined;
    if (this.timeout > 0) {
      timeoutSignal = AbortSignal.timeout(this.timeout);
      signals.push(timeoutSignal);
    }
    if (caller) signals.push(caller);
    const signal = signals.length === 0
      ? undefined
      : signals.length === 1
      ? signals[0]
      : AbortSignal.any(signals);
    return { signal, timeoutSignal };
  }

  /** Maps a body that stops because the request timed out to Unavailable. */
  #guardBody(res: Response, what: string, timeout: AbortSignal): Response {
    if (!res.body) return res;
    const reader = res.body.getReader();
    const ms = this.timeout;
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        try {
          const { value, done } = await reader.read();
          if (done) controller.close();
          else controller.enqueue(value);
        } catch (err) {
          controller.error(
            timeout.aborted
              ? new Unavailable(`Request timed out after ${describeTimeout(ms)}: ${what}`)
              : err,
          );
        }
      },
      cancel: (reason) => reader.cancel(reason),
    });
    return new Response(body, {
      status: res.status,
      statusText: res.statusText,
      headers: res.headers,
    });
  }

  /**
   * Why a request failed before its answer came: timed out, given up, the
   * socket not there, or, once the request's body was being sent
   * (`bodySent`), the daemon lost during it.
   */
  #transportError(
    err: unknown,
    what: string,
    timeout: AbortSignal | undefined,
    bodySent = false,
  ): Error {
    if (timeout?.aborted) {
      return new Unavailable(`Request timed out after ${describeTimeout(this.timeout)}: ${what}`, {
        cause: err,
      });
    }
    if (err instanceof DOMException && err.name === "AbortError") return err;
    const message = err instanceof Error
      ? `${err.message} ${(err.cause as Error | undefined)?.message ?? ""}`
      : "";
    if (/os error (2|111)\b|No such file|Connection refused/.test(message)) {
      return new Unavailable(
        `Cannot connect to the tug daemon at ${this.address}: is it running?`,
        { cause: err },
      );
    }
    if (/os error 13\b|Permission denied/.test(message)) {
      return new Unavailable(
        `Cannot connect to the tug daemon at ${this.address}: permission denied (root or the socket's group is needed)`,
        { cause: err },
      );
    }
    const reason = err instanceof Error ? err.message : String(err);
    if (bodySent) {
      return new Unavailable(
        `Lost the connection to the tug daemon at ${this.address} during ${what}: it closed the connection before answering (${reason})`,
        { cause: err },
      );
    }
    return new Unavailable(`Cannot reach the tug daemon at ${this.address}: ${reason}`, {
      cause: err,
    });
  }

  /** Closes the connection pool. */
  close(): void {
    this.#client?.close();
    this.#client = undefined;
  }
}
