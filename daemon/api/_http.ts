/**
 * What every route module uses: the hono app type, the namespace of a
 * request, error responses (tug's error classes to HTTP statuses, as
 * docs/architecture.md lists them), capped JSON bodies with hand-written
 * checks ({@link Fields}), query parameters, and NDJSON streams.
 *
 * @module
 */

import type { Context } from "hono";
import type { Hono } from "hono/tiny";
import { DEFAULT_NAMESPACE, type ErrorBody, NAMESPACE_HEADER } from "../../client/types.ts";
import { InvalidArgument, TugError } from "../../errors.ts";
import type { DaemonContext } from "../context.ts";

/** Variables a request carries through the middleware. */
export interface ApiEnv {
  Variables: {
    /** The request's namespace (validated). */
    namespace: string;
  };
}

/** The API's hono app. */
export type ApiApp = Hono<ApiEnv>;

/** A request's hono context. */
export type ApiContext = Context<ApiEnv>;

/** What a route module exports: a function adding its routes (under `/v1`) to the app. */
export interface RouteModule {
  routes(app: ApiApp, ctx: DaemonContext): void;
}

/** HTTP statuses by error code. */
export const STATUS_BY_CODE: Readonly<Record<string, number>> = {
  invalid_argument: 400,
  unauthenticated: 401,
  not_found: 404,
  already_exists: 409,
  conflict: 409,
  failed_precondition: 412,
  internal: 500,
  not_implemented: 501,
  unavailable: 503,
};

/** A request body over the limit: invalid_argument, answered with 413. */
export class BodyTooLarge extends InvalidArgument {}

/** The status and body of the error response for `err`. */
export function errorResponse(err: unknown): { status: number; body: ErrorBody } {
  if (err instanceof TugError) {
    const status = err instanceof BodyTooLarge ? 413 : STATUS_BY_CODE[err.code] ?? 500;
    return { status, body: { error: { code: err.code, message: err.message } } };
  }
  const message = err instanceof Error ? err.message : String(err);
  return {
    status: 500,
    body: { error: { code: "internal", message: `Internal error: ${message}` } },
  };
}

const IDENTIFIER = /^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$/;

/** Throws InvalidArgument unless `name` is a valid namespace (letters, digits, `.`, `_`, `-`; at most 76). */
export function validateNamespace(name: string): void {
  if (name.length === 0 || name.length > 76 || !IDENTIFIER.test(name)) {
    throw new InvalidArgument(
      `Invalid namespace ${
        JSON.stringify(name)
      }: use letters, digits and single . _ - between them, at most 76 characters`,
    );
  }
}

/** The namespace of a request: the `Tug-Namespace` header, or `default`. */
export function namespaceOf(c: Context): string {
  const name = c.req.header(NAMESPACE_HEADER) ?? DEFAULT_NAMESPACE;
  validateNamespace(name);
  return name;
}

/** Reads a request body of at most `limit` bytes as JSON; throws BodyTooLarge or InvalidArgument. */
export async function readJson(c: Context, limit: number): Promise<unknown> {
  const declared = c.req.header("content-length");
  if (declared !== undefined && Number(declared) > limit) {
    throw new BodyTooLarge(`Request body too large: ${declared} bytes, the limit is ${limit}`);
  }
  const body = c.req.raw.body;
  if (!body) throw new InvalidArgument("Invalid request body: empty, expected a JSON object");
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = body.getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > limit) {
      await reader.cancel().catch(() => {});
      throw new BodyTooLarge(`Request body too large: more than ${limit} bytes`);
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(size);
  let off = 0;
  for (const ch of chunks) {
    bytes.set(ch, off);
    off += ch.length;
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new InvalidArgument("Invalid request body: not UTF-8");
  }
  if (text.trim() === "") {
    throw new InvalidArgument("Invalid request body: empty, expected a JSON object");
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new InvalidArgument(`Invalid request body: ${(err as Error).message}`);
  }
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  return typeof v === "object" ? "an object" : `${typeof v} ${JSON.stringify(v)}`;
}

/**
 * Checked access to the fields of a JSON object body: each getter throws
 * InvalidArgument naming the field when it is missing or of the wrong type;
 * {@link Fields.end} refuses fields nobody asked for.
 *
 * @example
 * ```ts
 * const f = Fields.of(await readJson(c, limit));
 * const ref = f.string("ref");
 * const platform = f.optString("platform");
 * f.end();
 * ```
 */
export class Fields {
  readonly #obj: Record<string, unknown>;
  readonly #seen = new Set<string>();
  readonly #where: string;

  private constructor(obj: Record<string, unknown>, where: string) {
    this.#obj = obj;
    this.#where = where;
  }

  /** Wraps `value`, which must be a JSON object. */
  static of(value: unknown, where = "request body"): Fields {
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      throw new InvalidArgument(`Invalid ${where}: expected a JSON object, got ${describe(value)}`);
    }
    return new Fields(value as Record<string, unknown>, where);
  }

  #get(name: string): unknown {
    this.#seen.add(name);
    return Object.hasOwn(this.#obj, name) ? this.#obj[name] : undefined;
  }

  #bad(name: string, expected: string, got: unknown): InvalidArgument {
    return new InvalidArgument(
      `Invalid ${this.#where}: field ${name} must be ${expected}, got ${describe(got)}`,
    );
  }

  /** A required non-empty string. */
  string(name: string): string {
    const v = this.#get(name);
    if (v === undefined) {
      throw new InvalidArgument(`Invalid ${this.#where}: field ${name} is required`);
    }
    if (typeof v !== "string" || v === "") throw this.#bad(name, "a non-empty string", v);
    return v;
  }

  /** An optional non-empty string (null counts as absent). */
  optString(name: string): string | undefined {
    const v = this.#get(name);
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "string" || v === "") throw this.#bad(name, "a non-empty string", v);
    return v;
  }

  /** An optional string that may be empty, such as a password (null counts as absent). */
  optStringOrEmpty(name: string): string | undefined {
    const v = this.#get(name);
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "string") throw this.#bad(name, "a string", v);
    return v;
  }

  /** An optional boolean. */
  optBool(name: string): boolean | undefined {
    const v = this.#get(name);
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "boolean") throw this.#bad(name, "true or false", v);
    return v;
  }

  /** An optional integer within [min, max]. */
  optInt(
    name: string,
    min = Number.MIN_SAFE_INTEGER,
    max = Number.MAX_SAFE_INTEGER,
  ): number | undefined {
    const v = this.#get(name);
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
      throw this.#bad(name, `a whole number from ${min} to ${max}`, v);
    }
    return v;
  }

  /** An optional array of strings. */
  optStrings(name: string): string[] | undefined {
    const v = this.#get(name);
    if (v === undefined || v === null) return undefined;
    if (!Array.isArray(v) || !v.every((x) => typeof x === "string")) {
      throw this.#bad(name, "an array of strings", v);
    }
    return v as string[];
  }

  /** An optional object of string values (labels, annotations). */
  optStringMap(name: string): Record<string, string> | undefined {
    const v = this.#get(name);
    if (v === undefined || v === null) return undefined;
    if (
      typeof v !== "object" || Array.isArray(v) ||
      !Object.values(v).every((x) => typeof x === "string")
    ) {
      throw this.#bad(name, "an object of strings", v);
    }
    return { ...(v as Record<string, string>) };
  }

  /** An optional nested object, as Fields. */
  optObject(name: string): Fields | undefined {
    const v = this.#get(name);
    if (v === undefined || v === null) return undefined;
    return Fields.of(v, `${this.#where} field ${name}`);
  }

  /** The raw value of a field (for bodies checked elsewhere, such as an OCI spec). */
  raw(name: string): unknown {
    return this.#get(name);
  }

  /** Throws InvalidArgument naming the first field that no getter asked for. */
  end(): void {
    for (const k of Object.keys(this.#obj)) {
      if (!this.#seen.has(k)) {
        throw new InvalidArgument(`Invalid ${this.#where}: unknown field ${JSON.stringify(k)}`);
      }
    }
  }
}

/** A boolean query parameter (`1`, `true`, or present without a value); InvalidArgument for other values. */
export function boolQuery(c: Context, name: string): boolean {
  const v = c.req.query(name);
  if (v === undefined) return false;
  if (v === "" || v === "1" || v === "true") return true;
  if (v === "0" || v === "false") return false;
  throw new InvalidArgument(
    `Invalid query parameter ${name}: ${JSON.stringify(v)} is not true or false`,
  );
}

/**
 * Answers with an NDJSON stream: `run` gets `send` for progress messages
 * and resolves to the final message, sent as `{ result }`; a failure becomes
 * the last line `{ error: { code, message } }`. The `signal` given to `run`
 * aborts when the client goes away: Deno.serve cancels the body then, at
 * once, even while nothing is being written. (The request's own signal is
 * not used: Deno 2.9 also aborts it after every successful response, and
 * warns on stderr once a handler has read it.)
 */
export function ndjson(
  run: (send: (message: unknown) => void, signal: AbortSignal) => Promise<unknown>,
  onError?: (err: unknown) => void,
): Response {
  const encoder = new TextEncoder();
  const abort = new AbortController();
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  let open = true;
  const write = (message: unknown) => {
    if (!open) return;
    try {
      controller.enqueue(encoder.encode(JSON.stringify(message) + "\n"));
    } catch {
      open = false;
    }
  };
  const body = new ReadableStream<Uint8Array>({
    start(ctrl) {
      controller = ctrl;
      run(write, abort.signal).then(
        (result) => write({ result }),
        (err) => {
          onError?.(err);
          write(errorResponse(err).body);
        },
      ).finally(() => {
        if (!open) return;
        open = false;
        try {
          controller.close();
        } catch {
          // cancelled meanwhile
        }
      });
    },
    cancel(reason) {
      open = false;
      abort.abort(reason ?? new Error("client went away"));
    },
  });
  return new Response(body, { headers: { "content-type": "application/x-ndjson" } });
}
