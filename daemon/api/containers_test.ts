import { assertEquals, assertStringIncludes, assertThrows } from "../../tests/assert.ts";
import { InvalidArgument } from "../../errors.ts";
import { init } from "../containers/plugin.ts";
import { parseCreate, validateId } from "./containers.ts";
import { testApi } from "./_testing.ts";

Deno.test("parseCreate() reads every container flag and refuses unknown fields and wrong types", () => {
  const req = parseCreate({
    id: "web-1",
    image: "busybox",
    args: ["httpd", "-f"],
    env: ["A=1"],
    cwd: "/srv",
    user: "nobody",
    hostname: "web",
    mounts: [{ type: "bind", source: "/data", destination: "/data", options: ["rbind", "ro"] }],
    netHost: true,
    memoryLimit: 64 << 20,
    cpus: 0.5,
    pidsLimit: 10,
    readOnly: true,
    capAdd: ["NET_ADMIN"],
    capDrop: ["ALL"],
    seccompProfile: "unconfined",
    terminal: true,
    labels: { app: "web" },
    restart: "on-failure:3",
    logMaxSize: 1024,
    logMaxFile: 2,
  });
  assertEquals(req.restart, { name: "on-failure", maxRetries: 3 });
  assertEquals(req.mounts?.[0]?.options, ["rbind", "ro"]);
  assertEquals([req.cpus, req.memoryLimit, req.pidsLimit], [0.5, 64 << 20, 10]);
  assertEquals(parseCreate({ id: "a", image: "b", restart: { name: "always" } }).restart, {
    name: "always",
  });
  const bad: [unknown, string][] = [
    [{ image: "busybox" }, "field id is required"],
    [{ id: "a", image: "b", bogus: 1 }, 'unknown field "bogus"'],
    [{ id: "a", image: "b", args: "sh" }, "field args must be an array of strings"],
    [{ id: "a", image: "b", memoryLimit: -1 }, "field memoryLimit"],
    [{ id: "a", image: "b", cpus: "two" }, "field cpus must be a positive number"],
    [{ id: "a", image: "b", restart: "sometimes" }, "Invalid --restart"],
    [{ id: "a", image: "b", mounts: [{ type: "bind", destination: "rel" }] }, "absolute path"],
    [{ id: "a", image: "b", seccompProfile: { syscalls: [] } }, "defaultAction"],
    [{ id: "../x", image: "b" }, 'Invalid container id "../x"'],
    [[], "expected a JSON object"],
  ];
  for (const [body, message] of bad) {
    const err = assertThrows(() => parseCreate(body), InvalidArgument);
    assertStringIncludes(err.message, message);
  }
});

Deno.test("validateId() accepts what containerd accepts and nothing that could be a path", () => {
  for (const ok of ["a", "nginx-container", "my.exec_1", "A1"]) assertEquals(validateId(ok), ok);
  for (const bad of ["", "-a", "a/b", "..", "a..b", "x".repeat(77), "a b"]) {
    assertThrows(() => validateId(bad), InvalidArgument);
  }
});

Deno.test("container routes: malformed requests are 4xx and change nothing; unknown ids are 404", async () => {
  await using api = await testApi({ maxBodySize: 4096 });
  const plugin = init(api.ctx);
  api.ctx.onClose(() => plugin.close());
  const expect = async (
    method: string,
    path: string,
    status: number,
    body?: unknown,
    raw?: string,
  ) => {
    const res = await api.request(method, path, {
      ...(body !== undefined ? { json: body } : {}),
      ...(raw !== undefined ? { body: raw, headers: { "content-type": "application/json" } } : {}),
    });
    const text = await res.text();
    assertEquals(res.status, status, `${method} ${path}: ${text}`);
    return text;
  };
  await expect("POST", "/v1/containers", 400, undefined, "{not json");
  await expect("POST", "/v1/containers", 400, { id: 5, image: "busybox" });
  await expect("POST", "/v1/containers", 413, {
    id: "a",
    image: "b",
    env: ["X=" + "y".repeat(5000)],
  });
  assertStringIncludes(
    await expect("POST", "/v1/containers", 404, {
      id: "c1",
      image: "docker.io/library/nope:latest",
    }),
    "nope",
  );
  assertEquals(await expect("GET", "/v1/containers", 200), "[]");
  assertStringIncludes(await expect("GET", "/v1/containers/ghost", 404), "ghost");
  await expect("DELETE", "/v1/containers/ghost", 404);
  await expect("GET", "/v1/containers/ghost/logs", 404);
  await expect("GET", "/v1/containers/ghost/logs?tail=-3", 400);
  await expect("POST", "/v1/tasks/ghost/start", 404);
  await expect("POST", "/v1/tasks/ghost/kill", 400, { signal: true });
  await expect("POST", "/v1/tasks/ghost/kill", 404, { signal: "KILL" });
  await expect("POST", "/v1/tasks/ghost/exec", 400, { execId: "e1", args: [] });
  await expect("POST", "/v1/tasks/ghost/exec", 400, { execId: "../e", args: ["ps"] });
  await expect("POST", "/v1/tasks/ghost/wait", 400, { execId: "e1", remove: true });
  await expect("POST", "/v1/tasks/ghost/wait", 400, { remove: "yes" });
  await expect("POST", "/v1/tasks/ghost/wait", 404, { remove: true });
  await expect("POST", "/v1/tasks/ghost/resize", 400, { rows: 0, cols: 80 });
  await expect("POST", "/v1/tasks/ghost/attach", 400, { stdout: "relative/fifo" });
  await expect("GET", "/v1/tasks/..%2Fetc/ps", 400);
  assertEquals(await expect("GET", "/v1/tasks", 200), "[]");
});
