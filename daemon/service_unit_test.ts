import { join } from "node:path";
import { assertEquals, assertStringIncludes } from "../tests/assert.ts";
import { withTempDir } from "../tests/harness.ts";
import { parseConfig } from "./config.ts";
import { installService, renderUnit, serviceCommand } from "./service_unit.ts";

Deno.test("renderUnit() has what a tug daemon needs from systemd", () => {
  const unit = renderUnit(["/usr/local/bin/tug"]);
  for (
    const line of [
      "Type=notify",
      "KillMode=process",
      "Delegate=yes",
      "Restart=always",
      "WantedBy=multi-user.target",
    ]
  ) {
    assertStringIncludes(unit, `\n${line}\n`);
  }
  assertStringIncludes(
    unit,
    "\nExecStart=/usr/local/bin/tug daemon --config /etc/tug/config.toml\n",
  );
});

Deno.test("renderUnit() quotes words systemd would split or expand", () => {
  const unit = renderUnit([
    "/opt/my tug/deno",
    "run",
    "--v8-flags=--single-threaded",
    "/x/100%.js",
  ]);
  assertStringIncludes(
    unit,
    'ExecStart="/opt/my tug/deno" run --v8-flags=--single-threaded "/x/100%%.js" daemon',
  );
});

Deno.test("serviceCommand() runs this tug: deno with its flags and main module here", () => {
  const cmd = serviceCommand();
  assertEquals(cmd[0], Deno.execPath());
  assertEquals(cmd.some((a) => a.startsWith("--v8-flags=--single-threaded")), true);
});

Deno.test("installService() writes the unit and the default config, and keeps an existing config", async () => {
  await withTempDir(async (dir) => {
    const r = await installService({ rootDir: dir, command: ["/usr/bin/tug"] });
    assertEquals(r.unit, join(dir, "etc/systemd/system/tug.service"));
    assertEquals(r.config, { path: join(dir, "etc/tug/config.toml"), written: true });
    assertEquals(parseConfig(await Deno.readTextFile(r.config.path)).warnings, []);
    await Deno.writeTextFile(r.config.path, "# edited\n");
    const again = await installService({ rootDir: dir, command: ["/usr/bin/tug2"] });
    assertEquals(again.config.written, false);
    assertEquals(await Deno.readTextFile(r.config.path), "# edited\n");
    assertStringIncludes(await Deno.readTextFile(r.unit), "ExecStart=/usr/bin/tug2 daemon");
  });
});
