import { FailedPrecondition } from "../errors.ts";
import { assertEquals, assertRejects, assertThrows } from "../tests/assert.ts";
import { testApi } from "./api/_testing.ts";
import { defaultConfig } from "./config.ts";
import { DaemonContext, GC_PENDING_FILE, ServiceKey } from "./context.ts";
import { createLogger } from "./log.ts";

Deno.test("services: provide, use, find; a missing one is FailedPrecondition naming it", () => {
  const ctx = new DaemonContext({ config: defaultConfig(), log: createLogger("error") });
  const KEY = new ServiceKey<number[]>("numbers");
  assertEquals(ctx.find(KEY), undefined);
  assertThrows(() => ctx.use(KEY), FailedPrecondition, "Use numbers service: it is not running");
  ctx.provide(KEY, [1, 2]);
  assertEquals(ctx.use(KEY), [1, 2]);
});

Deno.test("close() aborts the signal and runs the close hooks last first, once", async () => {
  const ctx = new DaemonContext({ config: defaultConfig(), log: createLogger("error") });
  const order: string[] = [];
  ctx.onClose(() => void order.push("first"));
  ctx.onClose(() => {
    order.push("second");
    throw new Error("ignored");
  });
  ctx.onClose(() => Promise.resolve(void order.push("third")));
  await ctx.close();
  await ctx.close();
  assertEquals(order, ["third", "second", "first"]);
  assertEquals(ctx.signal.aborted, true);
  await assertRejects(() => ctx.images(), FailedPrecondition, "shutting down");
});

Deno.test("scheduleGc() runs one collection for requests close together, counted in the metrics", async () => {
  await using api = await testApi();
  const ctx = api.ctx;
  await ctx.images();
  ctx.scheduleGc();
  ctx.scheduleGc();
  ctx.scheduleGc();
  for (let i = 0; i < 200 && ctx.metrics.gcRuns.get() === 0; i++) {
    await new Promise((r) => setTimeout(r, 5));
  }
  await ctx.runGc();
  assertEquals(ctx.metrics.gcRuns.get(), 2, "one scheduled run, then the direct one");
});

Deno.test("the image service opens on first use, once", async () => {
  await using api = await testApi();
  assertEquals(api.ctx.imagesOpened, false);
  const [a, b] = await Promise.all([api.ctx.images(), api.ctx.images()]);
  assertEquals(a, b);
  assertEquals(api.ctx.imagesOpened, true);
});

Deno.test("gc-pending: made when the image service opens, kept by a cancelled collection, run at the next start", async () => {
  await using api = await testApi();
  const ctx = api.ctx;
  const marker = `${ctx.config.root}/${GC_PENDING_FILE}`;
  const exists = (p: string) => Deno.stat(p).then(() => true, () => false);
  ctx.collectLeftovers();
  assertEquals(ctx.imagesOpened, false, "nothing pending: the image service stays closed");
  await ctx.images();
  assertEquals(await exists(marker), true);
  ctx.config.images.gcDelay = 60_000;
  ctx.scheduleGc();
  await ctx.close();
  assertEquals(await exists(marker), true, "the cancelled collection is left to the next start");

  const next = new DaemonContext({ config: ctx.config, log: createLogger("error") });
  next.config.images.gcDelay = 0;
  next.collectLeftovers();
  for (let i = 0; i < 400 && next.metrics.gcRuns.get() === 0; i++) {
    await new Promise((r) => setTimeout(r, 5));
  }
  assertEquals(next.metrics.gcRuns.get(), 1);
  await next.close();
  assertEquals(await exists(marker), false, "a clean close with nothing pending");
});
