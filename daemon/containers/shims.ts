/**
 * The daemon's side of the shims: which shim a container belongs to (one per
 * namespace, or per value of the group label), starting one when none
 * answers, reconnecting to the ones already running when the daemon starts,
 * and forwarding their events.
 *
 * @module
 */

import { Unavailable } from "../../errors.ts";
import { selfCommand } from "../../self.ts";
import { RpcClient, type ShimEvent } from "../../shim/rpc.ts";
import { join } from "../../util/path.ts";

const GROUP_SAFE = /[^A-Za-z0-9._-]/g;
/** The longest path a unix socket address holds (sun_path is 108 bytes, with its NUL). */
const SOCKET_PATH_MAX = 107;

/** FNV-1a, 64 bits, as 16 hex digits: a short stable name for a long group. */
function fnv1a64(text: string): string {
  let h = 0xcbf29ce484222325n;
  for (const byte of new TextEncoder().encode(text)) {
    h ^= BigInt(byte);
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return h.toString(16).padStart(16, "0");
}

/** Options for {@link ShimManager}. */
export interface ShimManagerOptions {
  /** The daemon's state directory: shims live in `<state>/shims/<group>/`. */
  state: string;
  /** The label grouping containers into shims. */
  groupLabel: string;
  /** How long an empty shim waits before exiting (ms). */
  idleExit: number;
  /** Receives every event of every shim. */
  onEvent: (event: ShimEvent) => void;
  /** Told when the connection to a shim ends without the daemon closing it (the shim died). */
  onLost?: (group: string) => void;
  /** Extra environment for started shims. */
  env?: Record<string, string>;
}

/** Finds, starts and talks to shims. */
export class ShimManager {
  readonly #options: ShimManagerOptions;
  readonly #clients = new Map<string, Promise<RpcClient>>();

  constructor(options: ShimManagerOptions) {
    this.#options = options;
  }

  /**
   * The shim group of a container: its namespace, or namespace and group
   * label value. A name whose socket path would not fit in a unix socket
   * address (108 bytes) is cut short and given a hash of the whole name:
   * every start in such a group waited 10 s for a shim that could not listen
   * (a helper's probes, with the longest namespace name tug accepts).
   */
  group(namespace: string, labels: Record<string, string> = {}): string {
    const label = labels[this.#options.groupLabel];
    const name = (label ? `${namespace}.${label}` : namespace).replace(GROUP_SAFE, "_");
    // The bytes a group name may take (GROUP_SAFE leaves ASCII only): the config keeps 16.
    const room = SOCKET_PATH_MAX - (new TextEncoder().encode(this.socket("g")).length - 1);
    if (name.length <= room) return name;
    const hash = fnv1a64(name);
    const keep = room - hash.length - 1;
    return keep > 0 ? `${name.slice(0, keep)}-${hash}` : hash;
  }

  /** The socket of `group`'s shim. */
  socket(group: string): string {
    return join(this.#options.state, "shims", group, "shim.sock");
  }

  /** The shim of `group`, started when none answers. */
  get(group: string): Promise<RpcClient> {
    const existing = this.#clients.get(group);
    if (existing) {
      return existing.then((c) => (c.isClosed ? this.#reconnect(group, true) : c));
    }
    return this.#reconnect(group, true);
  }

  #reconnect(group: string, start: boolean): Promise<RpcClient> {
    const promise = this.#connect(group, start);
    this.#clients.set(group, promise);
    promise.then((client) => {
      client.closed.then(() => {
        // Still the group's connection: neither released nor replaced, so the shim went away.
        if (this.#clients.get(group) === promise) this.#options.onLost?.(group);
      });
    }, () => this.#clients.delete(group));
    return promise;
  }

  async #connect(group: string, start: boolean): Promise<RpcClient> {
    const socket = this.socket(group);
    const attempt = () => RpcClient.connect(socket, this.#options.onEvent);
    try {
      return await attempt();
    } catch (err) {
      if (!start) throw err;
    }
    const [cmd, ...args] = selfCommand();
    const child = new Deno.Command(cmd!, {
      args: [
        ...args,
        "shim",
        "--group",
        group,
        "--state",
        this.#options.state,
        "--idle-exit",
        String(this.#options.idleExit / 1000),
      ],
      stdin: "null",
      stdout: "null",
      stderr: "null",
      // Buffers of 16 KiB and more are mapped on their own, so that freeing them gives the
      // memory back (a long-lived shim otherwise keeps its peak).
      env: {
        MALLOC_ARENA_MAX: "1",
        MALLOC_MMAP_THRESHOLD_: "16384",
        ...this.#options.env,
      },
    }).spawn();
    // Reap it if it exits while we run; it is not ours to wait for otherwise.
    child.status.catch(() => {});
    child.unref();
    const deadline = Date.now() + 10_000;
    let last: unknown;
    while (Date.now() < deadline) {
      try {
        return await attempt();
      } catch (err) {
        last = err; // a stale socket of a dead shim, or not listening yet
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Unavailable(
      `Cannot start a shim for group ${JSON.stringify(group)}: ${
        (last as Error)?.message ?? "no answer"
      }`,
    );
  }

  /** Connects to every shim that is running (at daemon start): their groups. */
  async reconnectAll(): Promise<string[]> {
    const groups: string[] = [];
    let entries: Deno.DirEntry[] = [];
    try {
      entries = [...Deno.readDirSync(join(this.#options.state, "shims"))];
    } catch {
      return groups;
    }
    for (const e of entries) {
      if (!e.isDirectory) continue;
      try {
        await this.#reconnect(e.name, false);
        groups.push(e.name);
      } catch {
        // no shim answers there: its containers' records say what the daemon knows
      }
    }
    return groups;
  }

  /** Closes the connection to `group`'s shim (which exits once it holds nothing and has been idle). */
  release(group: string): void {
    const client = this.#clients.get(group);
    if (!client) return;
    this.#clients.delete(group);
    client.then((c) => c.close(), () => {});
  }

  /** Groups with a connected shim. */
  async connected(): Promise<string[]> {
    const out: string[] = [];
    for (const [group, p] of this.#clients) {
      const c = await p.catch(() => undefined);
      if (c && !c.isClosed) out.push(group);
    }
    return out;
  }

  /** Closes every connection (the shims keep running). */
  async close(): Promise<void> {
    const clients = [...this.#clients.values()];
    this.#clients.clear();
    for (const p of clients) (await p.catch(() => undefined))?.close();
  }
}
