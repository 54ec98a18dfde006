/**
 * One HTTP/1.1 request and its answer over a fresh connection to a unix
 * socket: the client's transport for every request whose body is a single
 * document, with an answer read whole ({@link exchange}) or as it arrives
 * ({@link openExchange}: NDJSON streams). Uploads and the export's download
 * go through `fetch`.
 *
 * Why not `fetch` for these too: a process's first `fetch` loads and
 * compiles Deno's fetch, Headers, Request/Response and streams code, about
 * 10 ms on a small machine, which was a sixth of a whole `tug run --rm`. A
 * plain connection, one write and a few reads cost under 2 ms the first
 * time. The answer is parsed by http-parser-js (sized, chunked and
 * until-close bodies); the request carries `connection: close`, so the
 * connection ends with the answer. A CLI that pulls is ~4.5 MiB smaller
 * for it (39.5 against 35 MiB peak RSS, measured 2026-11-24).
 *
 * @module
 */

import { HTTPParser } from "http-parser-js";
import { concat, writeAll } from "../util/bytes.ts";

/** The status and body of an answer. */
export interface Answer {
  status: number;
  body: Uint8Array;
}

/** A request for {@link exchange}. */
export interface Exchange {
  /** The unix socket. */
  socket: string;
  method: string;
  /** Path and query, e.g. `/v1/containers?all=1`. */
  target: string;
  /** Header names in lower case; host, connection and content-length are added. */
  headers: Record<string, string>;
  body?: Uint8Array;
  /** Ends the exchange: the returned promise rejects with `signal.reason`. */
  signal?: AbortSignal;
}

const latin1 = new TextDecoder("latin1");

/**
 * The bytes the parser reads: it calls Node's `Buffer.toString(encoding,
 * start, end)` on them for header and chunk-size lines, which a plain
 * Uint8Array does not have (and Node's Buffer is not loaded for one call).
 */
class Bytes extends Uint8Array {
  override toString(_encoding?: string, start = 0, end = this.length): string {
    return latin1.decode(this.subarray(start, end));
  }
}

/** The parts of http-parser-js's parser this module uses (its typings name Node's Buffer). */
interface Parser {
  execute(chunk: Uint8Array): number | Error;
  finish(): void | Error;
  [key: number]: unknown;
}

/** An answer read as it arrives: its status once the head is in, then its body. */
export interface StreamedAnswer {
  status: number;
  /**
   * The body's pieces as they arrive. Ends with the answer; rejects as
   * {@link exchange} does. The connection is closed when it ends or is left
   * (and by the request's signal).
   */
  body: AsyncGenerator<Uint8Array>;
}

/**
 * Sends one request over a new connection to `x.socket` and reads the whole
 * answer. Rejects with the connection's error (the caller names it), with
 * `signal.reason` when aborted, and with an Error naming the problem when
 * the answer is not HTTP or ends early.
 */
export async function exchange(x: Exchange): Promise<Answer> {
  const answer = await openExchange(x);
  return { status: answer.status, body: await readBody(answer.body) };
}

/** The rest of a streamed body, whole. */
export async function readBody(body: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const part of body) parts.push(part);
  return concat(parts);
}

/**
 * Sends one request over a new connection to `x.socket` and resolves once
 * the answer's head is in; its body is then read piece by piece (NDJSON
 * streams such as pull progress and events). Rejects as {@link exchange}.
 */
export async function openExchange(x: Exchange): Promise<StreamedAnswer> {
  x.signal?.throwIfAborted();
  const conn = await Deno.connect({ transport: "unix", path: x.socket });
  const close = () => {
    try {
      conn.close();
    } catch {
      // closed already
    }
  };
  const done = () => {
    x.signal?.removeEventListener("abort", close);
    close();
  };
  const failure = (err: unknown) => x.signal?.aborted ? x.signal.reason : err;
  x.signal?.addEventListener("abort", close, { once: true });
  const reader = new AnswerReader(conn);
  try {
    if (x.signal?.aborted) throw x.signal.reason;
    await writeAll(conn, request(x));
    while (reader.status === 0) {
      if (!(await reader.read())) throw new Error("the connection closed before the answer's head");
    }
  } catch (err) {
    done();
    throw failure(err);
  }
  async function* body(): AsyncGenerator<Uint8Array> {
    try {
      for (;;) {
        yield* reader.take();
        if (reader.complete || !(await reader.read())) return;
      }
    } catch (err) {
      throw failure(err);
    } finally {
      done();
    }
  }
  return { status: reader.status, body: body() };
}

function request(x: Exchange): Uint8Array {
  let head = `${x.method} ${x.target} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n`;
  for (const [name, value] of Object.entries(x.headers)) head += `${name}: ${value}\r\n`;
  const body = x.body ?? new Uint8Array();
  if (x.body !== undefined || x.method !== "GET") head += `content-length: ${body.length}\r\n`;
  const headBytes = new TextEncoder().encode(head + "\r\n");
  const out = new Uint8Array(headBytes.length + body.length);
  out.set(headBytes);
  out.set(body, headBytes.length);
  return out;
}

/** Parses an answer from a connection as its bytes arrive. */
class AnswerReader {
  readonly #conn: Deno.Conn;
  readonly #parser = new HTTPParser(HTTPParser.RESPONSE) as unknown as Parser;
  readonly #buf = new Bytes(64 * 1024);
  #parts: Uint8Array[] = [];
  /** 0 until the head is parsed. */
  status = 0;
  complete = false;

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
    this.#parser[HTTPParser.kOnHeadersComplete] = (info: { statusCode: number }) => {
      this.status = info.statusCode;
    };
    // The parser hands over copies of the body (slices of what it was given), so #buf is reused.
    this.#parser[HTTPParser.kOnBody] = (chunk: Uint8Array, offset: number, length: number) => {
      this.#parts.push(chunk.subarray(offset, offset + length));
    };
    this.#parser[HTTPParser.kOnMessageComplete] = () => {
      this.complete = true;
    };
  }

  /** Reads and parses what arrives next; false once the connection has ended with the answer complete. */
  async read(): Promise<boolean> {
    const n = await this.#conn.read(this.#buf);
    if (n === null) {
      const err = this.#parser.finish();
      if (err instanceof Error || !this.complete) {
        throw new Error("the connection closed before the answer was complete");
      }
      return false;
    }
    const parsed = this.#parser.execute(this.#buf.subarray(0, n));
    if (parsed instanceof Error) throw new Error(`the answer is not HTTP/1.1 (${parsed.message})`);
    return true;
  }

  /** The body's pieces parsed so far and not taken yet. */
  take(): Uint8Array[] {
    const parts = this.#parts;
    this.#parts = [];
    return parts;
  }
}
