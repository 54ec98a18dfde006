/**
 * The containers and tasks of {@link TugClient}: `client.containers` and
 * `client.tasks`. Stdio goes through FIFOs the caller makes (see
 * `cli/_stdio.ts`) and names in the requests.
 *
 * @module
 */

import { decodeError, type Transport } from "./http.ts";
import type {
  CgroupStats,
  ContainerInfo,
  CreateContainerRequest,
  ErrorBody,
  ExecRequest,
  ExitStatus,
  KillRequest,
  LogEntry,
  StdioRequest,
  TaskInfo,
} from "./types.ts";

const enc = encodeURIComponent;

/** Options for {@link ContainersClient.logs}. */
export interface LogsOptions {
  follow?: boolean;
  /** Only the last N lines. */
  tail?: number;
  /** Only lines at or after this time (RFC 3339). */
  since?: string;
  signal?: AbortSignal;
}

/** Container records. */
export class ContainersClient {
  readonly #t: Transport;
  readonly #namespace: string;

  /** @internal Use `client.containers`. */
  constructor(transport: Transport, namespace: string) {
    this.#t = transport;
    this.#namespace = namespace;
  }

  /** Every container of the namespace, with its task's state. */
  list(): Promise<ContainerInfo[]> {
    return this.#t.json("GET", "/containers", { namespace: this.#namespace });
  }

  /** Creates a container (its record and writable snapshot) from an image; throws NotFound, AlreadyExists. */
  create(request: CreateContainerRequest): Promise<ContainerInfo> {
    return this.#t.json("POST", "/containers", { namespace: this.#namespace, json: request });
  }

  /** One container, its OCI spec included. */
  get(id: string): Promise<ContainerInfo> {
    return this.#t.json("GET", `/containers/${enc(id)}`, { namespace: this.#namespace });
  }

  /** Removes a container without a running task (`force`: its task is killed and removed first); its snapshot and logs too. */
  async delete(id: string, options: { force?: boolean } = {}): Promise<void> {
    await this.#t.json("DELETE", `/containers/${enc(id)}`, {
      namespace: this.#namespace,
      query: { force: options.force },
    });
  }

  /** The container's log lines; with `follow`, until its task stops or `signal` aborts. */
  async *logs(id: string, options: LogsOptions = {}): AsyncGenerator<LogEntry> {
    const messages = await this.#t.lines<LogEntry | ErrorBody>(
      "GET",
      `/containers/${enc(id)}/logs`,
      {
        namespace: this.#namespace,
        query: {
          follow: options.follow,
          tail: options.tail === undefined ? undefined : String(options.tail),
          since: options.since,
        },
        ...(options.signal ? { signal: options.signal } : {}),
      },
    );
    for await (const m of messages) {
      if ("error" in m) throw decodeError(500, m, "Logs");
      yield m;
    }
  }
}

/** Tasks: the running processes of containers. */
export class TasksClient {
  readonly #t: Transport;
  readonly #namespace: string;

  /** @internal Use `client.tasks`. */
  constructor(transport: Transport, namespace: string) {
    this.#t = transport;
    this.#namespace = namespace;
  }

  #post<T>(id: string, verb: string, json?: unknown): Promise<T> {
    return this.#t.json("POST", `/tasks/${enc(id)}/${verb}`, {
      namespace: this.#namespace,
      json: json ?? {},
    });
  }

  /** Tasks of the namespace. */
  list(): Promise<TaskInfo[]> {
    return this.#t.json("GET", "/tasks", { namespace: this.#namespace });
  }

  /** Creates and starts the container's task; its stdio on the FIFOs given (else only the log). */
  start(id: string, stdio: StdioRequest = {}): Promise<TaskInfo> {
    return this.#post(id, "start", stdio);
  }

  /** Signals the task (default TERM). */
  async kill(id: string, request: KillRequest = {}): Promise<void> {
    await this.#post(id, "kill", request);
  }

  /**
   * Waits until the task (or an exec) exits. With `remove`, the daemon then
   * deletes the container (task, snapshot, record) before answering, even
   * when the caller has gone meanwhile: `run --rm`.
   */
  wait(
    id: string,
    options: { execId?: string; remove?: boolean; signal?: AbortSignal } = {},
  ): Promise<ExitStatus> {
    return this.#t.json("POST", `/tasks/${enc(id)}/wait`, {
      namespace: this.#namespace,
      json: {
        ...(options.execId ? { execId: options.execId } : {}),
        ...(options.remove ? { remove: true } : {}),
      },
      ...(options.signal ? { signal: options.signal } : {}),
    });
  }

  /** Starts another process in the running task. */
  exec(id: string, request: ExecRequest): Promise<{ pid: number }> {
    return this.#post(id, "exec", request);
  }

  /** Pids of the task's processes. */
  ps(id: string): Promise<number[]> {
    return this.#t.json("GET", `/tasks/${enc(id)}/ps`, { namespace: this.#namespace });
  }

  async pause(id: string): Promise<void> {
    await this.#post(id, "pause");
  }

  async resume(id: string): Promise<void> {
    await this.#post(id, "resume");
  }

  /** cgroup figures of the task. */
  metrics(id: string): Promise<CgroupStats> {
    return this.#t.json("GET", `/tasks/${enc(id)}/metrics`, { namespace: this.#namespace });
  }

  /** Sets the terminal size of the task (or an exec). */
  async resize(id: string, size: { rows: number; cols: number }, execId?: string): Promise<void> {
    await this.#post(id, "resize", { ...size, ...(execId ? { execId } : {}) });
  }

  /** Points the task's output (and terminal input) at new FIFOs. */
  async attach(id: string, stdio: StdioRequest): Promise<void> {
    await this.#post(id, "attach", stdio);
  }

  /** Removes a stopped task (a running one with `force`); its exit status when known. */
  async delete(id: string, options: { force?: boolean } = {}): Promise<ExitStatus | undefined> {
    return await this.#t.json<ExitStatus | undefined>("DELETE", `/tasks/${enc(id)}`, {
      namespace: this.#namespace,
      query: { force: options.force },
    });
  }
}
