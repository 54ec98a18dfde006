/**
 * The daemon's in-process event bus. Services publish what happened
 * (`publish("default", TOPICS.imageCreate, { name })`); `GET /v1/events`
 * and in-process listeners subscribe with a filter and read events as an
 * async iterable. Publishing never waits: each subscription queues up to
 * `buffer` events, and a subscriber that falls further behind is ended with
 * an Unavailable error rather than holding memory without bound.
 *
 * @example
 * ```ts
 * const bus = new EventBus();
 * const sub = bus.subscribe({ topics: ["/images/*"] });
 * bus.publish("default", "/images/create", { name: "docker.io/library/busybox:latest" });
 * for await (const event of sub) console.log(event.topic);
 * ```
 *
 * @module
 */

import type { TugEvent } from "../client/types.ts";
import { InvalidArgument, Unavailable } from "../errors.ts";

export type { TugEvent };

/** Which events a subscription receives. */
export interface EventFilter {
  /** Only events of this namespace (default: every namespace). */
  namespace?: string;
  /**
   * Topics to receive: exact (`/tasks/exit`) or a prefix ending in `*`
   * (`/tasks/*`). Default: every topic.
   */
  topics?: string[];
}

/** Options for {@link EventBus.subscribe}. */
export interface SubscribeOptions {
  /** Ends the subscription when aborted. */
  signal?: AbortSignal;
  /** Events queued before the subscriber is dropped (default 1024). */
  buffer?: number;
}

/** A subscription: iterate it for events; `close()` ends it. */
export interface EventSubscription extends AsyncIterable<TugEvent> {
  /** Ends the subscription; a pending iteration ends. */
  close(): void;
}

const TOPIC = /^(\/[a-z0-9][a-z0-9_.-]*)+$/;
const TOPIC_FILTER = /^(\/[a-z0-9][a-z0-9_.-]*)*(\/\*|\*)?$/;

/** Throws InvalidArgument unless `topic` looks like `/kind/action`. */
export function validateTopic(topic: string): void {
  if (typeof topic !== "string" || !TOPIC.test(topic)) {
    throw new InvalidArgument(
      `Invalid event topic ${
        JSON.stringify(topic)
      }: expected a path of lowercase words such as /images/create`,
    );
  }
}

/** Throws InvalidArgument unless `filter` is a topic or a topic prefix ending in `*`. */
export function validateTopicFilter(filter: string): void {
  if (typeof filter !== "string" || filter === "" || !TOPIC_FILTER.test(filter)) {
    throw new InvalidArgument(
      `Invalid event topic filter ${
        JSON.stringify(filter)
      }: expected a topic such as /tasks/exit or a prefix such as /tasks/*`,
    );
  }
}

function topicMatches(filters: readonly string[] | undefined, topic: string): boolean {
  if (!filters || filters.length === 0) return true;
  return filters.some((f) => (f.endsWith("*") ? topic.startsWith(f.slice(0, -1)) : f === topic));
}

class Subscriber implements EventSubscription {
  readonly #filter: EventFilter;
  readonly #limit: number;
  readonly #onClose: (s: Subscriber) => void;
  #queue: TugEvent[] = [];
  #wake: (() => void) | undefined;
  #closed = false;
  #error: Error | undefined;

  constructor(filter: EventFilter, limit: number, onClose: (s: Subscriber) => void) {
    this.#filter = filter;
    this.#limit = limit;
    this.#onClose = onClose;
  }

  offer(event: TugEvent): void {
    if (this.#closed) return;
    if (this.#filter.namespace !== undefined && this.#filter.namespace !== event.namespace) return;
    if (!topicMatches(this.#filter.topics, event.topic)) return;
    if (this.#queue.length >= this.#limit) {
      this.#fail(
        new Unavailable(
          `Events subscription ended: the subscriber fell more than ${this.#limit} events behind`,
        ),
      );
      return;
    }
    this.#queue.push(event);
    this.#signal();
  }

  #signal(): void {
    const w = this.#wake;
    this.#wake = undefined;
    w?.();
  }

  #fail(err: Error): void {
    this.#error = err;
    this.#queue = [];
    this.close();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#onClose(this);
    this.#signal();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<TugEvent> {
    try {
      for (;;) {
        const next = this.#queue.shift();
        if (next) {
          yield next;
          continue;
        }
        if (this.#closed) {
          if (this.#error) throw this.#error;
          return;
        }
        await new Promise<void>((resolve) => (this.#wake = resolve));
      }
    } finally {
      this.close();
    }
  }
}

/** The event bus (see the module documentation). */
export class EventBus {
  readonly #subscribers = new Set<Subscriber>();
  #published = 0;

  /**
   * Publishes an event to every matching subscription and returns it. Throws
   * InvalidArgument for a malformed topic.
   */
  publish(namespace: string, topic: string, payload: Record<string, unknown> = {}): TugEvent {
    validateTopic(topic);
    const event: TugEvent = { timestamp: new Date().toISOString(), namespace, topic, payload };
    this.#published++;
    for (const s of [...this.#subscribers]) s.offer(event);
    return event;
  }

  /** Subscribes to the events matching `filter` from now on. */
  subscribe(filter: EventFilter = {}, options: SubscribeOptions = {}): EventSubscription {
    for (const t of filter.topics ?? []) validateTopicFilter(t);
    const sub = new Subscriber(
      { ...filter, ...(filter.topics ? { topics: [...filter.topics] } : {}) },
      options.buffer ?? 1024,
      (s) => {
        this.#subscribers.delete(s);
        options.signal?.removeEventListener("abort", onAbort);
      },
    );
    const onAbort = () => sub.close();
    this.#subscribers.add(sub);
    if (options.signal?.aborted) sub.close();
    else options.signal?.addEventListener("abort", onAbort, { once: true });
    return sub;
  }

  /** Subscriptions open now. */
  get subscribers(): number {
    return this.#subscribers.size;
  }

  /** Events published since the bus was made. */
  get published(): number {
    return this.#published;
  }

  /** Ends every subscription. */
  close(): void {
    for (const s of [...this.#subscribers]) s.close();
  }
}
