/**
 * {@link TugClient}: the typed client of tug's daemon. Every method is one
 * API request; errors come back as the classes the daemon threw
 * (`NotFound`, `AlreadyExists`, …), and a daemon that is not running is
 * `Unavailable` at once.
 *
 * @module
 */

import { ContainersClient, TasksClient } from "./containers.ts";
import { ImagesClient } from "./images.ts";
import { decodeError, Transport, type TugClientOptions } from "./http.ts";
import type {
  ContentInfoRecord,
  DaemonInfo,
  ErrorBody,
  NamespaceInfo,
  SnapshotInfoRecord,
  SnapshotUsageInfo,
  SystemDfInfo,
  TugEvent,
  VersionInfo,
} from "./types.ts";

/** The namespace operations. */
export class NamespacesClient {
  readonly #t: Transport;

  /** @internal Use `client.namespaces`. */
  constructor(transport: Transport) {
    this.#t = transport;
  }

  /** Every namespace, by name. */
  list(): Promise<NamespaceInfo[]> {
    return this.#t.json("GET", "/namespaces");
  }

  /** The namespace `name`; throws NotFound. */
  get(name: string): Promise<NamespaceInfo> {
    return this.#t.json("GET", `/namespaces/${encodeURIComponent(name)}`);
  }

  /** Creates namespace `name`; throws AlreadyExists or InvalidArgument. */
  create(name: string, options: { labels?: Record<string, string> } = {}): Promise<NamespaceInfo> {
    return this.#t.json("POST", "/namespaces", {
      json: { name, ...(options.labels ? { labels: options.labels } : {}) },
    });
  }

  /** Removes namespace `name`; throws NotFound, or FailedPrecondition while it is not empty. */
  async remove(name: string): Promise<void> {
    await this.#t.json("DELETE", `/namespaces/${encodeURIComponent(name)}`);
  }
}

/** The content store listing. */
export class ContentClient {
  readonly #t: Transport;
  readonly #namespace: string;

  /** @internal Use `client.content`. */
  constructor(transport: Transport, namespace: string) {
    this.#t = transport;
    this.#namespace = namespace;
  }

  /** The blobs the namespace records. */
  list(): Promise<ContentInfoRecord[]> {
    return this.#t.json("GET", "/content", { namespace: this.#namespace });
  }
}

/** Options of the snapshot listings. */
export interface SnapshotsOptions {
  /** Default: the daemon's default snapshotter. */
  snapshotter?: string;
}

/** The snapshot listings. */
export class SnapshotsClient {
  readonly #t: Transport;
  readonly #namespace: string;

  /** @internal Use `client.snapshots`. */
  constructor(transport: Transport, namespace: string) {
    this.#t = transport;
    this.#namespace = namespace;
  }

  /** The snapshots the namespace records. */
  list(options: SnapshotsOptions = {}): Promise<SnapshotInfoRecord[]> {
    return this.#t.json("GET", "/snapshots", {
      namespace: this.#namespace,
      query: { snapshotter: options.snapshotter },
    });
  }

  /** Disk usage of each snapshot. */
  usage(options: SnapshotsOptions = {}): Promise<SnapshotUsageInfo[]> {
    return this.#t.json("GET", "/snapshots/usage", {
      namespace: this.#namespace,
      query: { snapshotter: options.snapshotter },
    });
  }
}

/** Options for {@link EventsClient.subscribe}. */
export interface SubscribeOptions {
  /** Only this namespace's events (default: every namespace). */
  namespace?: string;
  /** Topics, exact or as prefixes ending in `*` (default: every topic). */
  topics?: string[];
  signal?: AbortSignal;
}

/** An open event stream: iterate it; `close()` ends it. */
export interface EventStream extends AsyncIterable<TugEvent> {
  /** Resolves once the daemon has subscribed (events published from then on are received); rejects as the request does. */
  readonly ready: Promise<void>;
  close(): void;
}

/** The event stream. */
export class EventsClient {
  readonly #t: Transport;

  /** @internal Use `client.events`. */
  constructor(transport: Transport) {
    this.#t = transport;
  }

  /**
   * Subscribes to the daemon's events. The request starts at once; iterate
   * the result for events. The stream ends when closed, aborted, or when the
   * daemon stops.
   */
  subscribe(options: SubscribeOptions = {}): EventStream {
    const abort = new AbortController();
    if (options.signal) {
      if (options.signal.aborted) abort.abort();
      else options.signal.addEventListener("abort", () => abort.abort(), { once: true });
    }
    const t = this.#t;
    const response = t.lines<TugEvent | ErrorBody>("GET", "/events", {
      query: { namespace: options.namespace, topic: options.topics },
      signal: abort.signal,
    });
    const ready = response.then(() => {});
    ready.catch(() => {});
    return {
      ready,
      close: () => abort.abort(),
      async *[Symbol.asyncIterator](): AsyncGenerator<TugEvent> {
        let messages: AsyncGenerator<TugEvent | ErrorBody>;
        try {
          messages = await response;
        } catch (err) {
          if (abort.signal.aborted && err instanceof DOMException) return;
          throw err;
        }
        try {
          for await (const m of messages) {
            if ("error" in m) throw decodeError(500, m, "Events");
            yield m;
          }
        } catch (err) {
          if (abort.signal.aborted) return;
          throw err;
        } finally {
          abort.abort();
        }
      },
    };
  }
}

/** System-wide reports. */
export class SystemClient {
  readonly #t: Transport;
  readonly #namespace: string;

  /** @internal Use `client.system`. */
  constructor(transport: Transport, namespace: string) {
    this.#t = transport;
    this.#namespace = namespace;
  }

  /** Disk usage of the namespace by kind. */
  df(): Promise<SystemDfInfo> {
    return this.#t.json("GET", "/system/df", { namespace: this.#namespace });
  }
}

/**
 * The client of tug's daemon.
 *
 * @example
 * ```ts
 * import { TugClient } from "./mod.ts";
 * using client = new TugClient({ namespace: "default" });
 * await client.images.pull("busybox", { onProgress: (p) => console.log(p.unpack) });
 * for (const image of await client.images.list()) console.log(image.name);
 * ```
 */
export class TugClient implements Disposable {
  /** The transport (for API routes this class has no method for yet). */
  readonly transport: Transport;
  /** The daemon's socket. */
  readonly address: string;
  /** The namespace requests work in. */
  readonly namespace: string;
  readonly images: ImagesClient;
  readonly namespaces: NamespacesClient;
  readonly content: ContentClient;
  readonly snapshots: SnapshotsClient;
  readonly events: EventsClient;
  readonly system: SystemClient;
  readonly containers: ContainersClient;
  readonly tasks: TasksClient;

  constructor(options: TugClientOptions = {}, transport?: Transport) {
    this.transport = transport ?? new Transport(options);
    this.address = this.transport.address;
    this.namespace = options.namespace ?? this.transport.namespace;
    this.images = new ImagesClient(this.transport, this.namespace);
    this.namespaces = new NamespacesClient(this.transport);
    this.content = new ContentClient(this.transport, this.namespace);
    this.snapshots = new SnapshotsClient(this.transport, this.namespace);
    this.events = new EventsClient(this.transport);
    this.system = new SystemClient(this.transport, this.namespace);
    this.containers = new ContainersClient(this.transport, this.namespace);
    this.tasks = new TasksClient(this.transport, this.namespace);
  }

  /** A client for another namespace, sharing this one's connection. */
  withNamespace(namespace: string): TugClient {
    return new TugClient({ namespace }, this.transport);
  }

  /** The daemon's version. */
  version(): Promise<VersionInfo> {
    return this.transport.json("GET", "/version");
  }

  /** The daemon's directories, snapshotters, cgroups, runtime features and shims. */
  info(): Promise<DaemonInfo> {
    return this.transport.json("GET", "/info");
  }

  /** Closes the connection. */
  close(): void {
    this.transport.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
