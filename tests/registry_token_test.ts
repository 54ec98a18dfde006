/**
 * Bearer token auth against a real registry configured with `auth: token`
 * and a token server of our own (tests/registry.ts): tokens fetched from the
 * challenge's realm with the right service and scopes, reused per scope,
 * anonymous pull, refused credentials, push scopes, a stalled or unreachable
 * token server.
 */
import { join } from "node:path";
import { Unauthenticated, Unavailable } from "../errors.ts";
import { LocalContentStore } from "../images/content/local.ts";
import { RegistryClient } from "../images/registry/client.ts";
import { fetchImage } from "../images/registry/fetch.ts";
import { pushImage } from "../images/registry/push.ts";
import { assert, assertEquals, assertRejects, assertStringIncludes } from "./assert.ts";
import { inspectRaw, pushFixture } from "./fixtures/mod.ts";
import { requires, withTempDir } from "./harness.ts";
import { startRegistry } from "./registry.ts";

const ignore = requires("registry", "skopeo", "umoci", "busybox");

Deno.test({
  name: "bearer tokens come from the challenge's realm, once per scope, and are reused",
  ignore,
  async fn() {
    await using reg = await startRegistry({ auth: "token" });
    const single = await pushFixture(reg, "single");
    const layers = await pushFixture(reg, "layers");
    const tokens = reg.tokenServer!.requests;
    await withTempDir(async (dir) => {
      const store = await LocalContentStore.open(join(dir, "content"));
      const creds = reg.credentials!;
      const client = new RegistryClient({ plainHttp: true, credentials: () => creds });
      const n0 = tokens.length;
      await fetchImage(client, single, { store });
      assertEquals(tokens.slice(n0), [{
        scopes: ["repository:single:pull"],
        user: "tester",
        status: 200,
      }]);
      await fetchImage(client, layers, { store });
      await fetchImage(client, single, { store });
      assertEquals(tokens.slice(n0).map((t) => t.scopes.join(" ")), [
        "repository:single:pull",
        "repository:layers:pull",
      ]);

      // Anonymous pull: the token server grants pull without credentials.
      const anonymous = new RegistryClient({ plainHttp: true });
      const store2 = await LocalContentStore.open(join(dir, "content2"));
      await fetchImage(anonymous, single, { store: store2 });
      assertEquals(tokens[tokens.length - 1], { scopes: ["repository:single:pull"], status: 200 });

      // Refused credentials name the registry.
      const wrong = new RegistryClient({
        plainHttp: true,
        credentials: () => ({ username: "tester", password: "nope" }),
      });
      const err = await assertRejects(
        () => fetchImage(wrong, single, { store: store2 }),
        Unauthenticated,
      );
      assertStringIncludes(err.message, reg.host);
      assertStringIncludes(err.message, "tester");

      // Push asks for pull and push; anonymous push gets a pull-only token and is refused.
      const image = await fetchImage(client, single, { store });
      await pushImage(client, `${reg.host}/pushed:1`, image.target, { store });
      // The blobs' source label offers a mount from "single": the registry asks for that scope too.
      assertEquals(tokens[tokens.length - 1]!.scopes, [
        "repository:pushed:pull,push",
        "repository:single:pull",
      ]);
      assertEquals(
        await inspectRaw(reg, `${reg.host}/pushed:1`),
        new TextDecoder().decode(await store.readBytes(image.target.digest)),
      );
      const refused = await assertRejects(
        () => pushImage(anonymous, `${reg.host}/pushed:2`, image.target, { store }),
        Unauthenticated,
      );
      assertStringIncludes(refused.message, reg.host);

      // Credentials the token server accepts but grants pull only: the registry's challenge says
      // insufficient_scope, and so does the error, naming what was asked.
      reg.tokenServer!.pullOnly = true;
      const readOnly = await assertRejects(
        () => pushImage(client, `${reg.host}/readonly:1`, image.target, { store, mount: false }),
        Unauthenticated,
      );
      assertStringIncludes(
        readOnly.message,
        "the credentials of tester were accepted but do not grant pull,push on repository readonly (insufficient_scope)",
      );
      assert(!readOnly.message.includes("refused"), readOnly.message);
      assert(!readOnly.message.includes("authentication required"), readOnly.message);
      reg.tokenServer!.pullOnly = false;
      for (const c of [client, anonymous, wrong]) c.close();
    });
  },
});

Deno.test({
  name: "a token server that cannot be reached is named as the token server of the registry",
  ignore,
  async fn() {
    await using reg = await startRegistry({ auth: "token" });
    const single = await pushFixture(reg, "single");
    const realm = reg.tokenServer!.realm;
    await reg.tokenServer!.stop();
    const creds = reg.credentials!;
    const client = new RegistryClient({ plainHttp: true, credentials: () => creds });
    try {
      await withTempDir(async (dir) => {
        const store = await LocalContentStore.open(join(dir, "content"));
        const err = await assertRejects(() => fetchImage(client, single, { store }), Unavailable);
        assertStringIncludes(
          err.message,
          `fetch token for registry ${reg.host} from token server ${realm} failed: `,
        );
        assert(!err.message.includes("connect to registry"), err.message);
      });
    } finally {
      client.close();
    }
  },
});

/** What `promise` settles with (a rejection's reason as a value), or "timed out" after 10 s. */
async function settled(promise: Promise<unknown>): Promise<unknown> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise((resolve) => timer = setTimeout(() => resolve("timed out"), 10_000));
  try {
    return await Promise.race([promise.then((v) => v, (err) => err), late]);
  } finally {
    clearTimeout(timer);
  }
}

Deno.test({
  name:
    "a pull given up while its token server stalls rejects with the abort's reason, and the token request's connection is closed",
  ignore,
  async fn() {
    await using reg = await startRegistry({ auth: "token" });
    const single = await pushFixture(reg, "single");
    const creds = reg.credentials!;
    const client = new RegistryClient({ plainHttp: true, credentials: () => creds });
    const controller = new AbortController();
    const reason = new Error("the test gave up");
    const closed = Promise.withResolvers<string>();
    const release = Promise.withResolvers<void>();
    // The token server takes the request, the pull is given up, and no answer comes until the
    // request's connection closes.
    reg.tokenServer!.hold = (req) => {
      req.signal.addEventListener("abort", () => closed.resolve("closed"), { once: true });
      controller.abort(reason);
      return Promise.race([closed.promise.then(() => {}), release.promise]);
    };
    try {
      await withTempDir(async (dir) => {
        const store = await LocalContentStore.open(join(dir, "content"));
        const pull = fetchImage(client, single, { store, signal: controller.signal });
        const result = await settled(pull);
        assert(result === reason, `the pull settled with ${String(result)}`);
        assertEquals(await settled(closed.promise), "closed");
      });
    } finally {
      release.resolve();
      client.close();
    }
  },
});
