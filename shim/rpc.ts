/**
 * The shim's wire protocol: newline-delimited JSON over a unix socket.
 * Requests `{"id":1,"method":"start","params":{…}}` get
 * `{"id":1,"result":…}` or `{"id":1,"error":{"code":"not_found","message":"…"}}`;
 * a connection that called `subscribe` also receives `{"event":{…}}` lines.
 * Errors travel as tug's error classes (errors.ts) and come back as the same
 * classes.
 *
 * @module
 */

import { ERROR_CLASSES, errorMessage, TugError, Unavailable } from "../errors.ts";

/** An event a shim publishes (task exit, OOM, …). */
export interface ShimEvent {
  topic: string;
  namespace: string;
  id: string;
  [key: string]: unknown;
}

/** Handles one request; throwing a TugError sends its class back. */
export type Handler = (
  method: string,
  params: Record<string, unknown>,
) => Promise<unknown> | unknown;

const encoder = new TextEncoder();

/**
 * Splits what a connection sends into lines, reading into one buffer per
 * connection (a connection's `readable` allocates a fresh 64 KiB buffer for
 * every read, which a long-lived shim turned into megabytes of garbage).
 */
async function* lines(conn: Deno.Conn): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  const chunk = new Uint8Array(16 * 1024);
  let buffer = "";
  for (;;) {
    let n: number | null;
    try {
      n = await conn.read(chunk);
    } catch (err) {
      if (
        err instanceof Deno.errors.BadResource || err instanceof Deno.errors.Interrupted ||
        err instanceof Deno.errors.ConnectionReset
      ) break;
      throw err;
    }
    if (n === null) break;
    buffer += decoder.decode(chunk.subarray(0, n), { stream: true });
    let i: number;
    while ((i = buffer.indexOf("\n")) >= 0) {
      yield buffer.slice(0, i);
      buffer = buffer.slice(i + 1);
    }
  }
  if (buffer) yield buffer;
}

/** Serves the protocol on a unix socket. */
export class RpcServer {
  readonly #listener: Deno.Listener;
  readonly #subscribers = new Set<(line: string) => void>();
  readonly #connections = new Set<Deno.Conn>();

  constructor(path: string, handler: Handler) {
    this.#listener = Deno.listen({ transport: "unix", path });
    this.#accept(handler);
  }

  /** Number of open connections. */
  get connections(): number {
    return this.#connections.size;
  }

  async #accept(handler: Handler): Promise<void> {
    try {
      for await (const conn of this.#listener) this.#serve(conn, handler);
    } catch {
      // listener closed
    }
  }

  async #serve(conn: Deno.Conn, handler: Handler): Promise<void> {
    this.#connections.add(conn);
    const writer = conn.writable.getWriter();
    let chain = Promise.resolve();
    const send = (line: string) => {
      chain = chain.then(() => writer.write(encoder.encode(line + "\n"))).catch(() => {});
    };
    let subscribed: ((line: string) => void) | undefined;
    try {
      for await (const line of lines(conn)) {
        if (!line.trim()) continue;
        let request: { id?: unknown; method?: unknown; params?: unknown };
        try {
          request = JSON.parse(line);
        } catch {
          send(
            JSON.stringify({
              id: null,
              error: { code: "invalid_argument", message: "Invalid request: not JSON" },
            }),
          );
          continue;
        }
        const { id, method } = request;
        if (typeof method !== "string") {
          send(
            JSON.stringify({
              id,
              error: { code: "invalid_argument", message: "Invalid request: no method" },
            }),
          );
          continue;
        }
        if (method === "subscribe") {
          subscribed ??= send;
          this.#subscribers.add(send);
          send(JSON.stringify({ id, result: true }));
          continue;
        }
        const params =
          (request.params && typeof request.params === "object" ? request.params : {}) as Record<
            string,
            unknown
          >;
        // Requests are handled concurrently: a wait() must not hold up a kill().
        (async () => {
          try {
            const result = await handler(method, params);
            send(JSON.stringify({ id, result: result ?? null }));
          } catch (err) {
            const code = err instanceof TugError ? err.code : "internal";
            send(JSON.stringify({ id, error: { code, message: errorMessage(err) } }));
          }
        })();
      }
    } catch {
      // connection reset
    } finally {
      if (subscribed) this.#subscribers.delete(subscribed);
      this.#connections.delete(conn);
      await chain;
      try {
        conn.close();
      } catch {
        // closed
      }
    }
  }

  /** Sends an event to every subscriber. */
  publish(event: ShimEvent): void {
    const line = JSON.stringify({ event });
    for (const send of this.#subscribers) send(line);
  }

  /** Stops listening and drops every connection. */
  close(): void {
    try {
      this.#listener.close();
    } catch {
      // closed
    }
    for (const conn of this.#connections) {
      try {
        conn.close();
      } catch {
        // closed
      }
    }
  }
}

/** A connection to a shim. */
export class RpcClient {
  readonly #conn: Deno.Conn;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #pending = new Map<
    number,
    { resolve: (v: unknown) => void; reject: (e: Error) => void }
  >();
  #nextId = 1;
  #closed = false;
  /** Resolves when the connection ends (the shim exited or closed it). */
  readonly closed: Promise<void>;

  private constructor(conn: Deno.Conn, onEvent?: (event: ShimEvent) => void) {
    this.#conn = conn;
    this.#writer = conn.writable.getWriter();
    this.closed = this.#read(onEvent);
  }

  /** Connects to the shim listening at `path`; Unavailable when nothing answers there. */
  static async connect(path: string, onEvent?: (event: ShimEvent) => void): Promise<RpcClient> {
    let conn: Deno.Conn;
    try {
      conn = await Deno.connect({ transport: "unix", path });
    } catch (err) {
      throw new Unavailable(`Cannot connect to the shim at ${path}: ${errorMessage(err)}`, {
        cause: err,
      });
    }
    const client = new RpcClient(conn, onEvent);
    if (onEvent) await client.call("subscribe", {});
    return client;
  }

  async #read(onEvent?: (event: ShimEvent) => void): Promise<void> {
    try {
      for await (const line of lines(this.#conn)) {
        if (!line.trim()) continue;
        const msg = JSON.parse(line) as {
          id?: number;
          result?: unknown;
          error?: { code: string; message: string };
          event?: ShimEvent;
        };
        if (msg.event) {
          onEvent?.(msg.event);
          continue;
        }
        const pending = this.#pending.get(msg.id ?? -1);
        if (!pending) continue;
        this.#pending.delete(msg.id!);
        if (msg.error) {
          const Cls = ERROR_CLASSES[msg.error.code] ?? TugError;
          pending.reject(new Cls(msg.error.message));
        } else {
          pending.resolve(msg.result);
        }
      }
    } catch {
      // reset
    } finally {
      this.#closed = true;
      for (const p of this.#pending.values()) {
        p.reject(new Unavailable("The shim closed the connection"));
      }
      this.#pending.clear();
    }
  }

  /** Calls `method` and resolves with its result. */
  call<T = unknown>(method: string, params: Record<string, unknown>): Promise<T> {
    if (this.#closed) return Promise.reject(new Unavailable("The shim connection is closed"));
    const id = this.#nextId++;
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.#writer.write(encoder.encode(JSON.stringify({ id, method, params }) + "\n")).catch(
        (err) => {
          this.#pending.delete(id);
          reject(new Unavailable(`Cannot reach the shim: ${errorMessage(err)}`));
        },
      );
    });
  }

  /** True once the connection has ended. */
  get isClosed(): boolean {
    return this.#closed;
  }

  /** Closes the connection. */
  close(): void {
    try {
      this.#conn.close();
    } catch {
      // closed
    }
  }
}
