/**
 * The test images themselves: each hostile fixture carries the entry it is
 * named for (as Python's tarfile wrote it), so the unpacker's tests can rely
 * on them; checked after a round trip through a real registry.
 */
import { join } from "node:path";
import { LocalContentStore } from "../images/content/local.ts";
import { RegistryClient } from "../images/registry/client.ts";
import { decompressLayer } from "../images/registry/decompress.ts";
import { fetchImage } from "../images/registry/fetch.ts";
import { assert, assertEquals, assertStringIncludes } from "./assert.ts";
import { HOSTILE_KINDS, pushFixture } from "./fixtures/mod.ts";
import { requires, withTempDir } from "./harness.ts";
import { startRegistry } from "./registry.ts";

const ignore = requires("registry", "skopeo", "umoci", "busybox");

const EXPECTED: Record<string, string> = {
  dotdot: "../../../../../../tmp/tug-escape-dotdot",
  absolute: "/tmp/tug-escape-absolute",
  symlink: "evil-link/tug-escape-symlink",
  hardlink: "../../../../../../etc/passwd",
  huge: "huge.bin",
};

Deno.test({
  name: "each hostile fixture is a valid image whose last layer holds its hostile entry",
  ignore,
  async fn() {
    await using reg = await startRegistry();
    await withTempDir(async (dir) => {
      const store = await LocalContentStore.open(join(dir, "content"));
      const client = new RegistryClient({ plainHttp: true });
      for (const kind of HOSTILE_KINDS) {
        const image = await fetchImage(client, await pushFixture(reg, `hostile-${kind}`), {
          store,
        });
        const layers = image.manifests[0]!.layers;
        assertEquals(layers.length, 2, kind);
        const last = layers[1]!;
        let size = 0;
        let head = "";
        const d = new TextDecoder("latin1");
        for await (const chunk of decompressLayer(last.mediaType, await store.read(last.digest))) {
          if (head.length < 8192) head += d.decode(chunk.subarray(0, 8192));
          size += chunk.length;
        }
        assertStringIncludes(head, EXPECTED[kind]!, kind);
        if (kind === "huge") {
          assert(size > 512 << 20 && last.size < 8 << 20, `huge: ${last.size} → ${size}`);
        }
        const config = JSON.parse(
          new TextDecoder().decode(await store.readBytes(image.manifests[0]!.config.digest)),
        );
        assertEquals(config.rootfs.diff_ids.length, 2, kind);
      }
      client.close();
    });
  },
});
