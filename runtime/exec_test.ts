import { assertEquals } from "../tests/assert.ts";
import { execProcess } from "./exec.ts";

Deno.test("execProcess adds --cap to the bounding, effective and permitted sets, never to the inheritable one", () => {
  const p = execProcess({
    args: ["sleep"],
    cwd: "/",
    user: { uid: 0, gid: 0 },
    capabilities: { bounding: ["CAP_KILL"], effective: ["CAP_KILL"], ambient: ["CAP_KILL"] },
  }, { args: ["sh"], capabilities: ["CAP_NET_RAW", "CAP_KILL"] });
  assertEquals(p.capabilities, {
    bounding: ["CAP_KILL", "CAP_NET_RAW"],
    effective: ["CAP_KILL", "CAP_NET_RAW"],
    permitted: ["CAP_NET_RAW", "CAP_KILL"],
    // No inheritable set in the spec: the ambient set stays the spec's (runc >= 1.1.2).
    ambient: ["CAP_KILL"],
  });
});

Deno.test("execProcess adds --cap to the ambient set only when the process has an inheritable set", () => {
  const p = execProcess({
    args: ["sleep"],
    cwd: "/",
    user: { uid: 0, gid: 0 },
    capabilities: { inheritable: ["CAP_NET_RAW"] },
  }, { args: ["sh"], capabilities: ["CAP_NET_RAW"] });
  assertEquals(p.capabilities?.inheritable, ["CAP_NET_RAW"]);
  assertEquals(p.capabilities?.ambient, ["CAP_NET_RAW"]);
});
