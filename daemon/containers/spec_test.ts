import { assert, assertEquals, assertThrows } from "../../tests/assert.ts";
import { InvalidArgument } from "../../errors.ts";
import {
  buildSpec,
  capabilities,
  DEFAULT_CAPABILITIES,
  parseMountFlag,
  parseRestart,
} from "./spec.ts";

const image = {
  config: {
    Entrypoint: ["/docker-entrypoint.sh"],
    Cmd: ["httpd", "-f"],
    Env: ["PATH=/custom", "A=1"],
    WorkingDir: "/srv",
    User: "www",
  },
};
const base = { id: "web-1", namespace: "default", cgroupParent: "/tug", seccompDefault: true };

Deno.test("buildSpec() runs the image's entrypoint and command in its directory with its environment", () => {
  const { spec, user } = buildSpec(image, base);
  assertEquals(spec.process!.args, ["/docker-entrypoint.sh", "httpd", "-f"]);
  assertEquals(spec.process!.env, ["PATH=/custom", "A=1"]);
  assertEquals(spec.process!.cwd, "/srv");
  assertEquals(user, "www");
  assertEquals(spec.hostname, "web-1");
  assertEquals(spec.linux!.cgroupsPath, "/tug/default/web-1");
  assertEquals(spec.linux!.namespaces!.map((n) => n.type).sort(), [
    "cgroup",
    "ipc",
    "mount",
    "network",
    "pid",
    "uts",
  ]);
  assert(spec.linux!.seccomp, "the default seccomp profile applies");
  assertEquals(spec.process!.capabilities!.bounding, [...DEFAULT_CAPABILITIES]);
});

Deno.test("buildSpec() lets flags replace the command, add env, and set limits", () => {
  const { spec } = buildSpec(image, {
    ...base,
    args: ["sh", "-c", "true"],
    env: ["A=2", "B=3"],
    cwd: "/tmp",
    memoryLimit: 64 << 20,
    cpus: 0.5,
    pidsLimit: 10,
    readOnly: true,
    netHost: true,
  });
  assertEquals(spec.process!.args, ["/docker-entrypoint.sh", "sh", "-c", "true"]);
  assertEquals(spec.process!.env, ["PATH=/custom", "A=2", "B=3"]);
  assertEquals(spec.linux!.resources!.memory, { limit: 64 << 20 });
  assertEquals(spec.linux!.resources!.cpu, { quota: 50000, period: 100000 });
  assertEquals(spec.linux!.resources!.pids, { limit: 10 });
  assertEquals(spec.root!.readonly, true);
  assert(
    !spec.linux!.namespaces!.some((n) => n.type === "network"),
    "--net-host keeps the host network",
  );
});

Deno.test("buildSpec() with --privileged gives every capability, no seccomp and no masked paths", () => {
  const { spec } = buildSpec(image, { ...base, privileged: true });
  assertEquals(spec.linux!.seccomp, undefined);
  assertEquals(spec.linux!.maskedPaths, undefined);
  assertEquals(spec.linux!.resources!.devices, [{ allow: true, access: "rwm" }]);
  assert(spec.process!.capabilities!.bounding!.includes("CAP_SYS_ADMIN"));
});

Deno.test("capabilities() applies --cap-add and --cap-drop, ALL included, and names unknown ones", () => {
  assert(capabilities({ capAdd: ["sys_admin"] }).includes("CAP_SYS_ADMIN"));
  assert(!capabilities({ capDrop: ["NET_RAW"] }).includes("CAP_NET_RAW"));
  assertEquals(capabilities({ capDrop: ["ALL"], capAdd: ["CAP_KILL"] }), ["CAP_KILL"]);
  assertThrows(() => capabilities({ capAdd: ["CAP_NOPE"] }), InvalidArgument, "CAP_NOPE");
});

Deno.test("parseMountFlag() reads ctr's --mount syntax", () => {
  assertEquals(parseMountFlag("type=bind,src=/data,dst=/mnt,options=rbind:ro"), {
    type: "bind",
    source: "/data",
    destination: "/mnt",
    options: ["rbind", "ro"],
  });
  assertEquals(parseMountFlag("src=/a,dst=/b").options, ["rbind"]);
  assertThrows(
    () => parseMountFlag("src=rel,dst=/b"),
    InvalidArgument,
    "src must be an absolute path",
  );
});

Deno.test("buildSpec() refuses an image without a command", () => {
  assertThrows(() => buildSpec({ config: {} }, base), InvalidArgument, "no command");
});

Deno.test("parseRestart: on-failure:0 means no limit, as in Docker (it never restarted)", () => {
  assertEquals(parseRestart("on-failure:0"), { name: "on-failure" });
  assertEquals(parseRestart("on-failure:3"), { name: "on-failure", maxRetries: 3 });
  assertThrows(() => parseRestart("always:2"), InvalidArgument, "Invalid --restart");
});
