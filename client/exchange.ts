/**
 * One HTTP/1.1 request and its whole answer over a fresh connection to a
 * unix socket: the client's transport for every request whose body and
 * answer are single documents (almost all of the API; streams and uploads
 * go through `fetch`).
 *
 * Why not `fetch` for these too: a process's first `fetch` loads and
 * compiles Deno's fetch, Headers, Request/Response and streams code, about
 * 10 ms on a small machine, which was a sixth of a whole `tug run --rm`. A
 * plain connection, one write and a few reads cost under 2 ms the first
 * time. The answer is parsed by http-parser-js (sized, chunked and
 * until-close bodies); the request carries `connection: close`, so the
 * connection ends with the answer.
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

/**
 * Sends one request over a new connection to `x.socket` and reads the whole
 * answer. Rejects with the connection's error (the caller names it), with
 * `signal.reason` when aborted, and with an Error naming the problem when
 * the answer is not HTTP or ends early.
 */
export async function exchange(x: Exchange): Promise<Answer> {
  x.signal?.throwIfAborted();
  const conn = await Deno.connect({ transport: "unix", path: x.socket });
  const abort = () => {
    try {
      conn.close();
    } catch {
      // closed already
    }
  };
  x.signal?.addEventListener("abort", abort, { once: true });
  try {
    if (x.signal?.aborted) throw x.signal.reason;
    await writeAll(conn, request(x));
    return await readAnswer(conn);
  } catch (err) {
    throw x.signal?.aborted ? x.signal.reason : err;
  } finally {
    x.signal?.removeEventListener("abort", abort);
    abort();
  }
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

async function readAnswer(conn: Deno.Conn): Promise<Answer> {
  const parser = new HTTPParser(HTTPParser.RESPONSE) as unknown as Parser;
  let status = 0;
  let complete = false;
  const chunks: Uint8Array[] = [];
  parser[HTTPParser.kOnHeadersComplete] = (info: { statusCode: number }) => {
    status = info.statusCode;
  };
  parser[HTTPParser.kOnBody] = (chunk: Uint8Array, offset: number, length: number) => {
    chunks.push(chunk.subarray(offset, offset + length));
  };
  parser[HTTPParser.kOnMessageComplete] = () => {
    complete = true;
  };
  const buf = new Bytes(64 * 1024);
  while (!complete) {
    const n = await conn.read(buf);
    if (n === null) {
      const err = parser.finish();
      if (err instanceof Error || !complete) {
        throw new Error("the connection closed before the answer was complete");
      }
      break;
    }
    // The parser copies what it keeps (header lines as strings, body slices), so buf is reused.
    const parsed = parser.execute(buf.subarray(0, n));
    if (parsed instanceof Error) throw new Error(`the answer is not HTTP/1.1 (${parsed.message})`);
  }
  return { status, body: concat(chunks) };
}
