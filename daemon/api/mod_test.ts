import { assertEquals, assertStringIncludes } from "../../tests/assert.ts";
import {
  AlreadyExists,
  Conflict,
  FailedPrecondition,
  Internal,
  InvalidArgument,
  NotFound,
  NotImplemented,
  Unauthenticated,
  Unavailable,
} from "../../errors.ts";
import { testApi } from "./_testing.ts";
import { createApp } from "./mod.ts";
import { errorResponse, type RouteModule } from "./_http.ts";
import { DaemonContext } from "../context.ts";
import { defaultConfig } from "../config.ts";
import { createLogger } from "../log.ts";

Deno.test("errorResponse() maps each error class to its status and code", () => {
  const cases: Array<[Error, number, string]> = [
    [new InvalidArgument("x"), 400, "invalid_argument"],
    [new Unauthenticated("x"), 401, "unauthenticated"],
    [new NotFound("x"), 404, "not_found"],
    [new AlreadyExists("x"), 409, "already_exists"],
    [new Conflict("x"), 409, "conflict"],
    [new FailedPrecondition("x"), 412, "failed_precondition"],
    [new Internal("x"), 500, "internal"],
    [new NotImplemented("x"), 501, "not_implemented"],
    [new Unavailable("x"), 503, "unavailable"],
    [new TypeError("boom"), 500, "internal"],
  ];
  for (const [err, status, code] of cases) {
    const r = errorResponse(err);
    assertEquals([r.status, r.body.error.code], [status, code], err.name);
  }
  assertEquals(errorResponse(new TypeError("boom")).body.error.message, "Internal error: boom");
});

Deno.test("a thrown error becomes its status with { error: { code, message } }", async () => {
  const ctx = new DaemonContext({ config: defaultConfig(), log: createLogger("error") });
  const thrower: RouteModule = {
    routes(app) {
      app.get("/v1/boom/:kind", (c) => {
        const kind = c.req.param("kind");
        if (kind === "missing") throw new NotFound("Get thing x: not found");
        if (kind === "busy") throw new FailedPrecondition("Remove thing x: it is running");
        throw new Error("unexpected");
      });
    },
  };
  const app = await createApp(ctx, [() => Promise.resolve(thrower)]);
  let res = await app.request("/v1/boom/missing");
  assertEquals(res.status, 404);
  assertEquals(await res.json(), {
    error: { code: "not_found", message: "Get thing x: not found" },
  });
  res = await app.request("/v1/boom/busy");
  assertEquals(res.status, 412);
  assertEquals((await res.json()).error.code, "failed_precondition");
  res = await app.request("/v1/boom/other");
  assertEquals(res.status, 500);
  assertEquals((await res.json()).error, {
    code: "internal",
    message: "Internal error: unexpected",
  });
  await ctx.close();
});

Deno.test("an unknown route is not_found naming it", async () => {
  await using api = await testApi();
  const res = await api.request("GET", "/v1/nothing/here");
  assertEquals(res.status, 404);
  assertEquals(await res.json(), {
    error: { code: "not_found", message: "Unknown API route: GET /v1/nothing/here" },
  });
  const old = await api.request("GET", "/v0/version");
  assertEquals(old.status, 404);
});

Deno.test("a malformed namespace header is invalid_argument", async () => {
  await using api = await testApi();
  for (const ns of ["a b", "../x", "-x", "x".repeat(77)]) {
    const res = await api.request("GET", "/v1/images", { namespace: ns });
    assertEquals(res.status, 400, ns);
    assertStringIncludes((await res.json()).error.message, "Invalid namespace");
  }
});

Deno.test("requests are counted and timed by method, route pattern and status", async () => {
  await using api = await testApi();
  await api.request("GET", "/v1/version");
  await api.request("GET", "/v1/images/docker.io%2Flibrary%2Fnone%3Alatest");
  await api.request("GET", "/v1/nowhere");
  const m = api.ctx.metrics;
  assertEquals(m.apiRequests.get({ method: "GET", route: "/v1/version", status: "200" }), 1);
  assertEquals(m.apiRequests.get({ method: "GET", route: "/v1/images/:name", status: "404" }), 1);
  assertEquals(m.apiRequests.get({ method: "GET", route: "unmatched", status: "404" }), 1);
  const text = await m.registry.render();
  assertStringIncludes(
    text,
    'tug_api_request_duration_seconds_count{method="GET",route="/v1/version",status="200"} 1',
  );
});

Deno.test("version does not open the image service", async () => {
  await using api = await testApi();
  const res = await api.request("GET", "/v1/version");
  assertEquals(res.status, 200);
  const v = await res.json();
  assertEquals(v.api, "v1");
  assertEquals(api.ctx.imagesOpened, false);
});
