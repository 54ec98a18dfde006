import { join } from "node:path";
import { InvalidArgument, NotFound } from "../errors.ts";
import {
  assert,
  assertEquals,
  assertRejects,
  assertStringIncludes,
  assertThrows,
} from "../tests/assert.ts";
import {
  applyOverrides,
  CONFIG_KEYS,
  defaultConfig,
  loadConfig,
  parseConfig,
  renderConfig,
  renderDefaultConfig,
} from "./config.ts";

Deno.test("the default file has a comment per key and parses back to the defaults", () => {
  const text = renderDefaultConfig();
  const { config, warnings } = parseConfig(text);
  assertEquals(config, defaultConfig());
  assertEquals(warnings, []);
  const lines = text.split("\n");
  for (const spec of CONFIG_KEYS) {
    const name = spec.key.split(".").pop()!;
    const i = lines.findIndex((l, j) =>
      l.startsWith(`${name} = `) &&
      (spec.key.includes(".")
        ? lines.slice(0, j).reverse().find((x) => x.startsWith("[")) ===
          `[${spec.key.split(".")[0]}]`
        : !lines.slice(0, j).some((x) => x.startsWith("[")))
    );
    assert(i > 0, `${spec.key} is in the default file`);
    assert(lines[i - 1]!.startsWith("# "), `${spec.key} has a comment`);
  }
});

Deno.test("an empty file gives the defaults", () => {
  assertEquals(parseConfig("").config, defaultConfig());
});

Deno.test("renderConfig() of a changed configuration parses back to it", () => {
  const c = defaultConfig();
  c.root = "/data/tug";
  c.api.gid = 1000;
  c.metrics.address = "127.0.0.1:1338";
  c.debug.level = "debug";
  c.images.snapshotter = "native";
  c.images.maxLayerSize = 3 * 1024 ** 3;
  c.images.pullConcurrency = 8;
  c.logs.maxSize = 1536 * 1024;
  c.containers.stopTimeout = 1500;
  c.containers.seccompDefault = false;
  c.shim.idleExit = 0;
  assertEquals(parseConfig(renderConfig(c)).config, c);
});

Deno.test("parseConfig() reads every kind of value", () => {
  const { config } = parseConfig(`
root = "/srv/tug/"
[api]
address = "/tmp/t.sock"
max_body_size = 65536
[images]
max_layer_size = "2g"
gc_delay = "0"
[logs]
max_size = "1MiB"
max_file = 7
[shim]
idle_exit = "1m30s"
`);
  assertEquals(config.root, "/srv/tug");
  assertEquals(config.api.address, "/tmp/t.sock");
  assertEquals(config.api.maxBodySize, 65536);
  assertEquals(config.images.maxLayerSize, 2 * 1024 ** 3);
  assertEquals(config.images.gcDelay, 0);
  assertEquals(config.logs.maxSize, 1 << 20);
  assertEquals(config.logs.maxFile, 7);
  assertEquals(config.shim.idleExit, 90_000);
});

Deno.test("unknown keys and tables are warnings that name them", () => {
  const { config, warnings } = parseConfig(
    `colour = "blue"\n[api]\nadress = "/x"\n[plugins]\nx = 1\n`,
    "/etc/tug/config.toml",
  );
  assertEquals(config, defaultConfig());
  assertEquals(warnings, [
    "Unknown config key colour in /etc/tug/config.toml: ignored",
    "Unknown config key api.adress in /etc/tug/config.toml: ignored",
    "Unknown config key plugins in /etc/tug/config.toml: ignored",
  ]);
});

Deno.test("a TOML syntax error names the file, the line and the column", () => {
  assertThrows(
    () => parseConfig("root = ", "/etc/tug/config.toml"),
    InvalidArgument,
    "Parse /etc/tug/config.toml:",
  );
  assertThrows(
    () => parseConfig('[api]\naddress = "/run/x.sock"\nmax body = 5\n', "/etc/tug/config.toml"),
    InvalidArgument,
    "Parse /etc/tug/config.toml: Invalid TOML document: illegal character in key at line 3, column 5",
  );
});

/** For each key, values it must refuse, and one it must accept. */
const CASES: Record<string, { bad: string[]; good: string }> = {
  "version": { bad: ["2", "0", '"1"'], good: "1" },
  "root": { bad: ['"relative/dir"', "1", '""'], good: '"/var/lib/x"' },
  "state": { bad: ['"run/tug"', "true"], good: '"/run/x"' },
  "api.address": { bad: ['"tug.sock"', `"/${"x".repeat(120)}"`, "5"], good: '"/run/x.sock"' },
  "api.gid": { bad: ["-1", '"wheel"', "1.5"], good: "100" },
  "api.max_body_size": { bad: ['"10"', '"lots"', "-4"], good: '"4MiB"' },
  "metrics.address": {
    bad: ['"1338"', '"127.0.0.1:99999"', "1338", '"a b:1"'],
    good: '"[::1]:1338"',
  },
  "debug.level": { bad: ['"verbose"', "3"], good: '"warn"' },
  "images.snapshotter": { bad: ['"zfs"', "1"], good: '"native"' },
  "images.pull_concurrency": { bad: ["0", "65", '"3"'], good: "5" },
  "images.max_layer_size": { bad: ['"big"', "-1", "true"], good: '"1GiB"' },
  "images.gc_delay": { bad: ["5", '"5"', '"-1s"'], good: '"5s"' },
  "registry.config_path": { bad: ['"certs.d"', "[]"], good: '"/etc/x/certs.d"' },
  "containers.cgroup_parent": { bad: ['""', '"/a/../b"', "1"], good: '"system.slice/tug"' },
  "containers.seccomp_default": { bad: ['"yes"', "1"], good: "false" },
  "containers.stop_timeout": { bad: ["10", '"10 seconds"'], good: '"30s"' },
  "containers.restart_delay": { bad: ["1", '"1d"'], good: '"250ms"' },
  "containers.restart_delay_max": { bad: ['"0"', "60"], good: '"5m"' },
  "logs.max_size": { bad: ['"1k"', '"ten"', "0"], good: '"100MiB"' },
  "logs.max_file": { bad: ["0", "101", '"3"'], good: "10" },
  "shim.group_label": { bad: ['""', '"a b"', "1"], good: '"example.com/group"' },
  "shim.idle_exit": { bad: ["30", '"forever"'], good: '"0s"' },
};

function doc(key: string, value: string): string {
  const dot = key.indexOf(".");
  return dot < 0
    ? `${key} = ${value}\n`
    : `[${key.slice(0, dot)}]\n${key.slice(dot + 1)} = ${value}\n`;
}

Deno.test("every key has validation cases", () => {
  assertEquals(Object.keys(CASES).sort(), CONFIG_KEYS.map((k) => k.key).sort());
});

for (const [key, { bad, good }] of Object.entries(CASES)) {
  Deno.test(`parseConfig() refuses bad values of ${key}, naming the key`, () => {
    for (const value of bad) {
      const err = assertThrows(() => parseConfig(doc(key, value)), InvalidArgument);
      assertStringIncludes(err.message, `Invalid config ${key}: `, `value ${value}`);
    }
    const { config, warnings } = parseConfig(doc(key, good));
    assertEquals(warnings, []);
    if (key !== "version") {
      assert(JSON.stringify(config) !== JSON.stringify(defaultConfig()), `${good} changes ${key}`);
    }
  });
}

Deno.test("a table where a key belongs, or a value where a table belongs, names the key", () => {
  assertThrows(
    () => parseConfig('api = "x"\n'),
    InvalidArgument,
    "Invalid config api: expected a table",
  );
  assertThrows(() => parseConfig("root = { a = 1 }\n"), InvalidArgument, "Invalid config root:");
});

Deno.test("applyOverrides() checks flag values as their keys", () => {
  const c = defaultConfig();
  applyOverrides(c, {
    root: "/tmp/r",
    state: "/tmp/s",
    address: "/tmp/s/tug.sock",
    logLevel: "debug",
  });
  assertEquals([c.root, c.state, c.api.address, c.debug.level], [
    "/tmp/r",
    "/tmp/s",
    "/tmp/s/tug.sock",
    "debug",
  ]);
  assertThrows(
    () => applyOverrides(c, { address: "tug.sock" }),
    InvalidArgument,
    "Invalid config api.address",
  );
  assertThrows(
    () => applyOverrides(c, { logLevel: "loud" }),
    InvalidArgument,
    "Invalid config debug.level",
  );
});

Deno.test("loadConfig() uses the defaults without a file, unless the file was named", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const missing = join(dir, "none.toml");
    assertEquals((await loadConfig({ path: missing })).config, defaultConfig());
    await assertRejects(() => loadConfig({ path: missing, required: true }), NotFound, missing);
    const file = join(dir, "config.toml");
    await Deno.writeTextFile(file, '[debug]\nlevel = "warn"\n[api]\naddress = "/x/y.sock"\n');
    const { config } = await loadConfig({ path: file, address: "/z.sock" });
    assertEquals(config.debug.level, "warn");
    assertEquals(config.api.address, "/z.sock");
    await Deno.writeTextFile(file, '[debug]\nlevel = "loud"\n');
    await assertRejects(
      () => loadConfig({ path: file }),
      InvalidArgument,
      "Invalid config debug.level",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a state directory too long for the shims' sockets under it is refused, naming the key", () => {
  // The daemon started, and every start then waited 10 s for a shim that could not listen.
  const ok = "/" + "s".repeat(107 - 1 - "/shims/0123456789abcdef/shim.sock".length);
  assertEquals(parseConfig(`state = "${ok}"`).config.state, ok);
  assertThrows(
    () => parseConfig(`state = "${ok}x"`),
    InvalidArgument,
    "state: ",
  );
});
