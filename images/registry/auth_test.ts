import { Unauthenticated, Unavailable } from "../../errors.ts";
import { assertEquals, assertRejects } from "../../tests/assert.ts";
import { Authorizer, mergeScopes, parseChallenges, repositoryScope } from "./auth.ts";

Deno.test("parseChallenges() reads bearer and basic challenges with quoted parameters", () => {
  assertEquals(
    parseChallenges(
      'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"',
    ),
    [{
      scheme: "bearer",
      params: {
        realm: "https://auth.docker.io/token",
        service: "registry.docker.io",
        scope: "repository:library/busybox:pull",
      },
    }],
  );
  assertEquals(parseChallenges('Basic realm="my \\"registry\\""'), [{
    scheme: "basic",
    params: { realm: 'my "registry"' },
  }]);
  assertEquals(parseChallenges('Basic realm="a", Bearer realm="https://t/x",service=reg'), [
    { scheme: "basic", params: { realm: "a" } },
    { scheme: "bearer", params: { realm: "https://t/x", service: "reg" } },
  ]);
  assertEquals(parseChallenges(""), []);
});

Deno.test("mergeScopes() unites scopes and merges the actions of one resource", () => {
  assertEquals(mergeScopes(["repository:a:pull"], ["repository:a:push", "repository:b:pull"]), [
    "repository:a:pull,push",
    "repository:b:pull",
  ]);
  assertEquals(
    repositoryScope("library/busybox", ["pull", "push"]),
    "repository:library/busybox:pull,push",
  );
});

function challenge(header: string): Response {
  return new Response(null, { status: 401, headers: { "www-authenticate": header } });
}

const BEARER = 'Bearer realm="https://auth.example/token",service="reg.example"';

Deno.test("Authorizer fetches a token per scope set, reuses it until it expires, and shares concurrent fetches", async () => {
  let now = 1_000_000;
  const seen: { url: string; auth: string | null }[] = [];
  const authz = new Authorizer({
    credentials: (host) => host === "reg.example" ? { username: "u", password: "p" } : undefined,
    now: () => now,
    fetch: async (url, init) => {
      seen.push({ url, auth: new Headers(init.headers).get("authorization") });
      await new Promise((r) => setTimeout(r, 5));
      return Response.json({ token: `t${seen.length}`, expires_in: 60 });
    },
  });
  assertEquals(await authz.authorization("reg.example", ["repository:a:pull"]), undefined);
  const scopes = await authz.challenge(
    "reg.example",
    challenge(`${BEARER},scope="repository:a:pull"`),
    ["repository:a:pull"],
  );
  assertEquals(scopes, ["repository:a:pull"]);
  assertEquals(seen.length, 1);
  assertEquals(
    seen[0]!.url,
    "https://auth.example/token?service=reg.example&scope=repository%3Aa%3Apull",
  );
  assertEquals(seen[0]!.auth, `Basic ${btoa("u:p")}`);
  const [x, y] = await Promise.all([
    authz.authorization("reg.example", ["repository:a:pull"]),
    authz.authorization("reg.example", ["repository:a:pull"]),
  ]);
  assertEquals([x, y], ["Bearer t1", "Bearer t1"]);
  // Another scope: another token, fetched once for concurrent requests.
  const [p, q] = await Promise.all([
    authz.authorization("reg.example", ["repository:b:pull"]),
    authz.authorization("reg.example", ["repository:b:pull"]),
  ]);
  assertEquals([p, q], ["Bearer t2", "Bearer t2"]);
  // Expired: fetched again.
  now += 61_000;
  assertEquals(await authz.authorization("reg.example", ["repository:a:pull"]), "Bearer t3");
  assertEquals(seen.length, 3);
});

Deno.test("Authorizer answers basic challenges with credentials and refuses without them", async () => {
  const authz = new Authorizer({
    credentials: (host) => host === "with.example" ? { username: "ü", password: "p:w" } : undefined,
    fetch: () => Promise.reject(new Error("no token requests expected")),
  });
  await authz.challenge("with.example", challenge('Basic realm="r"'), []);
  const bytes = new TextEncoder().encode("ü:p:w");
  assertEquals(
    await authz.authorization("with.example", []),
    `Basic ${btoa(String.fromCharCode(...bytes))}`,
  );
  await assertRejects(
    () =>
      authz.challenge("with.example", challenge('Basic realm="r"'), [], {
        sent: `Basic ${btoa(String.fromCharCode(...bytes))}`,
      }),
    Unauthenticated,
    "were refused",
  );
  await assertRejects(
    () => authz.challenge("without.example", challenge('Basic realm="r"'), []),
    Unauthenticated,
    "without.example",
  );
  await assertRejects(
    () => authz.challenge("odd.example", challenge("Negotiate abc"), []),
    Unauthenticated,
    "unsupported challenge",
  );
});

Deno.test("Authorizer reports token server failures as Unauthenticated or Unavailable, naming the registry", async () => {
  const refusing = new Authorizer({
    fetch: () => Promise.resolve(new Response("no", { status: 401 })),
  });
  const e1 = await assertRejects(
    () => refusing.challenge("reg.example", challenge(BEARER), []),
    Unauthenticated,
    "reg.example",
  );
  assertEquals(e1.message.includes("anonymous access was refused"), true, e1.message);
  const down = new Authorizer({ fetch: () => Promise.reject(new TypeError("connection refused")) });
  await assertRejects(
    () => down.challenge("reg.example", challenge(BEARER), []),
    Unavailable,
    "fetch token for registry reg.example from token server https://auth.example/token failed: connection refused",
  );
  // The transport's failure names the realm's host as a registry: the token server is named instead.
  const unreachable = new Authorizer({
    fetch: () =>
      Promise.reject(
        new Unavailable("connect to registry auth.example failed: connection refused", {
          cause: new TypeError("connection refused"),
        }),
      ),
  });
  const e2 = await assertRejects(
    () => unreachable.challenge("reg.example", challenge(BEARER), []),
    Unavailable,
    "fetch token for registry reg.example from token server https://auth.example/token failed: connection refused",
  );
  assertEquals(e2.message.includes("connect to registry"), false, e2.message);
  const empty = new Authorizer({ fetch: () => Promise.resolve(Response.json({})) });
  await assertRejects(
    () => empty.challenge("reg.example", challenge(BEARER), []),
    Unauthenticated,
    "no token",
  );
});

Deno.test("Authorizer retries a request sent without credentials before it learnt the host wants basic", async () => {
  const authz = new Authorizer({
    credentials: () => ({ username: "u", password: "p" }),
    fetch: () => Promise.reject(new Error("no token requests expected")),
  });
  // Three requests went out at once, before the scheme was known: each is answered 401.
  for (let i = 0; i < 3; i++) {
    assertEquals(
      await authz.challenge("reg.example", challenge('Basic realm="r"'), ["repository:a:pull"]),
      ["repository:a:pull"],
    );
  }
  const sent = await authz.authorization("reg.example", []);
  assertEquals(sent, `Basic ${btoa("u:p")}`);
  // A request that carried the credentials and got 401: they were refused.
  await assertRejects(
    () => authz.challenge("reg.example", challenge('Basic realm="r"'), [], { sent }),
    Unauthenticated,
    "the credentials of u were refused",
  );
});

Deno.test("Authorizer gives a token fetch up with the requests waiting for it, and only when all have", async () => {
  const signals: AbortSignal[] = [];
  const authz = new Authorizer({
    fetch: (_url, init) => {
      const signal = init.signal!;
      signals.push(signal);
      if (signals.length > 1) return Promise.resolve(Response.json({ token: "t2" }));
      // The first fetch stalls until it is aborted.
      return new Promise((_, reject) =>
        signal.addEventListener("abort", () => reject(signal.reason), { once: true })
      );
    },
  });
  const a = new AbortController();
  const b = new AbortController();
  const scopes = ["repository:a:pull"];
  const first = authz.challenge("reg.example", challenge(BEARER), scopes, { signal: a.signal });
  const second = authz.authorization("reg.example", scopes, { signal: b.signal });
  while (signals.length === 0) await new Promise((r) => setTimeout(r, 1));
  const reasonA = new Error("a gave up");
  a.abort(reasonA);
  assertEquals(await first.catch((e) => e), reasonA);
  // The other request still waits: the fetch goes on.
  assertEquals(signals[0]!.aborted, false);
  const reasonB = new Error("b gave up");
  b.abort(reasonB);
  assertEquals(await second.catch((e) => e), reasonB);
  assertEquals(signals[0]!.aborted, true);
  // The next request fetches anew.
  assertEquals(await authz.authorization("reg.example", scopes), "Bearer t2");
  assertEquals(signals.length, 2);
  // An aborted signal is refused before anything is sent.
  const done = new AbortController();
  done.abort(reasonA);
  assertEquals(
    await authz.authorization("reg.example", ["repository:b:pull"], { signal: done.signal })
      .catch((e) => e),
    reasonA,
  );
  assertEquals(signals.length, 2);
});

Deno.test("Authorizer.describe() tells refused credentials from accepted ones that lack the scope asked for", async () => {
  const named = new Authorizer({
    credentials: () => ({ username: "bob", password: "p" }),
    fetch: () => Promise.reject(new Error("no token requests expected")),
  });
  const anonymous = new Authorizer({
    fetch: () => Promise.reject(new Error("no token requests expected")),
  });
  const scoped =
    `${BEARER},scope="repository:team/app:push,pull repository:base:pull",error="insufficient_scope"`;
  assertEquals(
    await named.describe("reg.example", scoped),
    "the credentials of bob were accepted but do not grant pull,push on repository team/app and pull on repository base (insufficient_scope)",
  );
  assertEquals(
    await anonymous.describe("reg.example", `${BEARER},error="insufficient_scope"`),
    "no credentials were given, and anonymous access does not grant the access asked for (insufficient_scope)",
  );
  assertEquals(
    await named.describe("reg.example", `${BEARER},error="invalid_token"`),
    "the credentials of bob were refused",
  );
  assertEquals(await named.describe("reg.example"), "the credentials of bob were refused");
  assertEquals(await anonymous.describe("reg.example"), "no credentials were given");
});
