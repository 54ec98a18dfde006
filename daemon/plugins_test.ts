import { assertEquals } from "../tests/assert.ts";
import { defaultConfig } from "./config.ts";
import { DaemonContext } from "./context.ts";
import { createLogger } from "./log.ts";
import { startPlugins } from "./plugins.ts";

Deno.test("startPlugins() reports what started and what failed, and registers close hooks", async () => {
  const ctx = new DaemonContext({ config: defaultConfig(), log: createLogger("error", () => {}) });
  let closed = 0;
  const report = await startPlugins(ctx, [
    { id: "a", load: () => Promise.resolve({ init: () => ({ close: () => void closed++ }) }) },
    { id: "b", load: () => Promise.reject(new Error("module missing")) },
    { id: "c", load: () => Promise.resolve({ init: () => {} }) },
  ]);
  assertEquals(report, { started: ["a", "c"], failed: [{ id: "b", error: "module missing" }] });
  await ctx.close();
  assertEquals(closed, 1);
});
