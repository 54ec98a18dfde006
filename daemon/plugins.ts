/**
 * The daemon's plugins: services started with the daemon, in order, and
 * closed in reverse when it stops. A plugin module exports `init(ctx)`; it
 * may provide services on the context (`ctx.provide`), fill its hooks
 * (`ctx.hooks`), register metrics providers, start background loops that
 * end on `ctx.signal`, and return what to close. A plugin whose `init`
 * fails is reported and the daemon keeps running without it (its routes
 * then answer FailedPrecondition from `ctx.use`).
 *
 * To add one, append a line to {@link PLUGINS}.
 *
 * @module
 */

import type { DaemonContext } from "./context.ts";

/** What `init` may return. */
export interface PluginInstance {
  /** Called when the daemon stops, after the API stopped accepting requests. */
  close?(): void | Promise<void>;
}

/** What a plugin module exports. */
export interface PluginModule {
  init(ctx: DaemonContext): PluginInstance | void | Promise<PluginInstance | void>;
}

/** A plugin: its id and how to load its module. */
export interface Plugin {
  id: string;
  load(): Promise<PluginModule>;
}

/** The plugins, in start order. */
export const PLUGINS: readonly Plugin[] = [
  { id: "containers", load: () => import("./containers/plugin.ts") },
];

/** What {@link startPlugins} did. */
export interface PluginReport {
  started: string[];
  failed: Array<{ id: string; error: string }>;
}

/** Starts `plugins` in order; failures are logged and reported, not thrown. */
export async function startPlugins(
  ctx: DaemonContext,
  plugins: readonly Plugin[] = PLUGINS,
): Promise<PluginReport> {
  const report: PluginReport = { started: [], failed: [] };
  for (const p of plugins) {
    try {
      const instance = await (await p.load()).init(ctx);
      if (instance?.close) ctx.onClose(() => instance.close!());
      report.started.push(p.id);
      ctx.log.debug("plugin started", { plugin: p.id });
    } catch (err) {
      const error = err instanceof Error ? err.message : String(err);
      report.failed.push({ id: p.id, error });
      ctx.log.error("plugin failed to start", { plugin: p.id, error });
    }
  }
  return report;
}
