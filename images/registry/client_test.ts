import { join } from "node:path";
import { InvalidArgument, NotImplemented, Unavailable } from "../../errors.ts";
import {
  assert,
  assertEquals,
  assertRejects,
  assertStringIncludes,
  assertThrows,
} from "../../tests/assert.ts";
import { makePki } from "../../tests/registry.ts";
import { digestOf } from "../content/digest.ts";
import { MEDIA_TYPES } from "../types.ts";
import { parseReference } from "./reference.ts";
import {
  isIndexType,
  isManifestType,
  MANIFEST_ACCEPT,
  manifestMediaType,
  refuseSchema1,
  RegistryClient,
  verifyBytes,
} from "./client.ts";

const enc = (o: unknown) => new TextEncoder().encode(JSON.stringify(o));

Deno.test("manifestMediaType() trusts a manifest Content-Type and sniffs generic ones", () => {
  assertEquals(manifestMediaType(`${MEDIA_TYPES.ociIndex}; charset=utf-8`), MEDIA_TYPES.ociIndex);
  assertEquals(
    manifestMediaType("application/json", enc({ mediaType: MEDIA_TYPES.dockerManifest })),
    MEDIA_TYPES.dockerManifest,
  );
  assertEquals(
    manifestMediaType("text/plain", enc({ schemaVersion: 2, manifests: [] })),
    MEDIA_TYPES.ociIndex,
  );
  assertEquals(
    manifestMediaType(null, enc({ schemaVersion: 2, config: {}, layers: [] })),
    MEDIA_TYPES.ociManifest,
  );
  assertEquals(
    manifestMediaType("application/json", enc({ schemaVersion: 1, fsLayers: [] })),
    "application/vnd.docker.distribution.manifest.v1+json",
  );
});

Deno.test("refuseSchema1() refuses Docker schema 1 with NotImplemented naming the image", () => {
  assertThrows(
    () =>
      refuseSchema1(
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
        "docker.io/library/old:1",
      ),
    NotImplemented,
    "docker.io/library/old:1",
  );
  refuseSchema1(MEDIA_TYPES.ociManifest, "x");
  assert(isManifestType(MEDIA_TYPES.dockerManifestList));
  assert(isIndexType(MEDIA_TYPES.dockerManifestList) && !isIndexType(MEDIA_TYPES.ociManifest));
  assert(!MANIFEST_ACCEPT.includes("distribution.manifest.v1"));
});

Deno.test("verifyBytes() names the object and both digests on a mismatch", () => {
  const bytes = new TextEncoder().encode("manifest");
  verifyBytes(bytes, {
    mediaType: MEDIA_TYPES.ociManifest,
    digest: digestOf(bytes),
    size: bytes.length,
  }, "m");
  const other = digestOf("other");
  const err = assertThrows(
    () =>
      verifyBytes(
        bytes,
        { mediaType: MEDIA_TYPES.ociManifest, digest: other, size: bytes.length },
        "manifest x",
      ),
    InvalidArgument,
    other,
  );
  assert(err.message.includes(digestOf(bytes)) && err.message.includes("manifest x"));
  assertThrows(
    () => verifyBytes(bytes, { mediaType: "", digest: digestOf(bytes), size: 3 }, "m"),
    InvalidArgument,
    "size mismatch",
  );
});

/** Sets the modification times of everything under `dir` an hour back. */
async function settle(dir: string): Promise<void> {
  const past = new Date(Date.now() - 3_600_000);
  for await (const e of Deno.readDir(dir)) {
    const path = join(dir, e.name);
    if (e.isDirectory) await settle(path);
    await Deno.utime(path, past, past);
  }
}

Deno.test("RegistryClient.hosts() reads a namespace's hosts again once a file they come from changes, only then", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tug-client-hosts-" });
  const client = new RegistryClient({ hostsDir: dir });
  try {
    const servers = async () =>
      (await client.hosts("reg.io:5000")).map((h) => `${h.scheme}://${h.host}`);
    const write = async (sub: string, name: string, text: string) => {
      await Deno.mkdir(join(dir, sub), { recursive: true });
      await Deno.writeTextFile(join(dir, sub, name), text);
    };
    assertEquals(await servers(), ["https://reg.io:5000"]);
    // Created: _default, then a directory of the namespace's own, which comes first.
    await write("_default", "hosts.toml", `[host."http://m.test"]\n`);
    assertEquals(await servers(), ["http://m.test", "https://reg.io:5000"]);
    await write("reg.io:5000", "hosts.toml", `server = "http://a.test:5000"\n`);
    assertEquals(await servers(), ["http://a.test:5000"]);
    // Unchanged: the same hosts, not read again (once their files are not just written, when a
    // change could keep the modification time).
    await settle(dir);
    const first = await client.hosts("reg.io:5000");
    assert(first === await client.hosts("reg.io:5000"));
    // Edited in place (the same size, twice in a row), replaced, a file that fails, then fixed.
    await write("reg.io:5000", "hosts.toml", `server = "http://b.test:5000"\n`);
    assertEquals(await servers(), ["http://b.test:5000"]);
    await write("reg.io:5000", "hosts.toml", `server = "http://e.test:5000"\n`);
    assertEquals(await servers(), ["http://e.test:5000"]);
    await write("reg.io:5000", "new.toml", `server = "http://c.test:5000"\n`);
    await Deno.rename(join(dir, "reg.io:5000", "new.toml"), join(dir, "reg.io:5000", "hosts.toml"));
    assertEquals(await servers(), ["http://c.test:5000"]);
    await write("reg.io:5000", "hosts.toml", `server = 5\n`);
    await assertRejects(() => client.hosts("reg.io:5000"), InvalidArgument, "server must be");
    await write("reg.io:5000", "hosts.toml", `server = "https://d.test:5000"\nca = "ca.pem"\n`);
    const pki = await makePki(join(dir, "pki"));
    await Deno.copyFile(pki.caCert, join(dir, "reg.io:5000", "ca.pem"));
    const [withCa] = await client.hosts("reg.io:5000");
    assertEquals(withCa!.tls.ca, [await Deno.readTextFile(pki.caCert)]);
    // The CA file rewritten: its new contents.
    const rotated = await makePki(join(dir, "pki2"));
    await settle(dir);
    await client.hosts("reg.io:5000");
    await Deno.copyFile(rotated.caCert, join(dir, "reg.io:5000", "ca.pem"));
    assertEquals((await client.hosts("reg.io:5000"))[0]!.tls.ca, [
      await Deno.readTextFile(rotated.caCert),
    ]);
    // Removed: _default again, then nothing.
    await Deno.remove(join(dir, "reg.io:5000"), { recursive: true });
    assertEquals(await servers(), ["http://m.test", "https://reg.io:5000"]);
    await Deno.remove(join(dir, "_default"), { recursive: true });
    assertEquals(await servers(), ["https://reg.io:5000"]);
  } finally {
    client.close();
    await Deno.remove(dir, { recursive: true });
  }
});

/** A TCP server that reads a little of each request and breaks the connection off, or never answers. */
async function withRawServer(
  mode: "break" | "silent",
  fn: (host: string) => Promise<void>,
): Promise<void> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  const serving = (async () => {
    for await (const conn of listener) {
      conns.push(conn);
      if (mode === "break") {
        await conn.read(new Uint8Array(1024)).catch(() => null);
        conn.close();
      }
    }
  })();
  try {
    await fn(`127.0.0.1:${(listener.addr as Deno.NetAddr).port}`);
  } finally {
    listener.close();
    await serving.catch(() => {});
    for (const c of conns) {
      try {
        c.close();
      } catch {
        // closed already
      }
    }
  }
}

Deno.test("RegistryClient.uploadRequest(): an upload cut off names the upload; one given up is passed on as it is", async () => {
  const client = new RegistryClient({ plainHttp: true });
  const body = () => new Uint8Array(8 << 20);
  try {
    await withRawServer("break", async (host) => {
      const err = await assertRejects(() =>
        client.uploadRequest(parseReference(`${host}/x`), `http://${host}/v2/x/blobs/uploads/1`, {
          method: "PUT",
          body,
          what: "upload of blob sha256:abc to x",
        })
      );
      assert(err instanceof Unavailable, String(err));
      assertStringIncludes(
        err.message,
        `upload of blob sha256:abc to x failed: send to registry ${host} failed:`,
      );
    });
    await withRawServer("silent", async (host) => {
      const abort = new AbortController();
      const gone = new Error("client went away");
      setTimeout(() => abort.abort(gone), 100);
      const err = await assertRejects(() =>
        client.uploadRequest(parseReference(`${host}/x`), `http://${host}/v2/x/blobs/uploads/1`, {
          method: "PATCH",
          body,
          what: "upload of blob sha256:abc to x",
          signal: abort.signal,
        })
      );
      assertEquals(err, gone);
    });
  } finally {
    client.close();
  }
});
