/**
 * The containers plugin: makes the {@link ContainerService} available to the
 * API routes through {@link CONTAINERS}, reports shims for `info` and
 * per-container cgroup figures for `/metrics`.
 *
 * The service opens the image service (its database holds the containers),
 * so it is opened on first use, not with the daemon. At start-up it is opened
 * at once only when there is something to recover: shims still running from
 * a previous daemon, or containers whose restart policies want them running
 * again (listed in `<root>/autostart`, which survives reboots).
 *
 * @module
 */

import { exists } from "../../util/fs.ts";
import { join } from "../../util/path.ts";
import type { ShimInfo } from "../../client/types.ts";
import { type DaemonContext, ServiceKey } from "../context.ts";
import { type ContainerMetrics, containerMetricsProvider } from "../metrics.ts";
import type { ContainerService } from "./service.ts";

/** The file under the root listing the containers that start with the daemon. */
export const AUTOSTART_FILE = "autostart";

/** Opens (once) and returns the containers service. */
export type OpenContainers = () => Promise<ContainerService>;

/** Where route modules find the containers service. */
export const CONTAINERS = new ServiceKey<OpenContainers>("containers");

/** The containers service of `ctx` (opened on first use). */
export function containers(ctx: DaemonContext): Promise<ContainerService> {
  return ctx.use(CONTAINERS)();
}

/** Starts the plugin (see the module documentation). */
export function init(ctx: DaemonContext): { close(): Promise<void> } {
  let opening: Promise<ContainerService> | undefined;
  const open: OpenContainers = () => {
    if (!opening) {
      const p = (async () => {
        const [{ ContainerService }, images] = await Promise.all([
          import("./service.ts"),
          ctx.images(),
        ]);
        const service = new ContainerService({
          images,
          events: ctx.events,
          config: ctx.config,
          log: ctx.log,
        });
        await service.recover();
        ctx.log.debug("containers service open", { tasks: service.taskCount });
        return service;
      })();
      opening = p;
      p.catch((err) => {
        ctx.log.error("open containers service failed", { error: String(err) });
        if (opening === p) opening = undefined;
      });
    }
    return opening;
  };
  ctx.provide(CONTAINERS, open);

  const opened = async () => (opening ? await opening.catch(() => undefined) : undefined);
  ctx.hooks.shims = async (): Promise<ShimInfo[]> => (await opened())?.shimInfo() ?? [];
  ctx.metrics.registry.addProvider(
    containerMetricsProvider(async () =>
      ((await (await opened())?.allMetrics()) ?? []) as ContainerMetrics[]
    ),
  );

  // Recover now when there is anything to recover; otherwise an idle daemon stays small.
  const shimsDir = join(ctx.config.state, "shims");
  const hasShims = (() => {
    try {
      for (const e of Deno.readDirSync(shimsDir)) {
        if (exists(join(shimsDir, e.name, "shim.sock"))) return true;
      }
    } catch {
      // none
    }
    return false;
  })();
  if (hasShims || exists(join(ctx.config.root, AUTOSTART_FILE))) {
    open().catch(() => {}); // logged above; the next request tries again
  }

  return {
    async close() {
      const service = await opened();
      await service?.close();
    },
  };
}
