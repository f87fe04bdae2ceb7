// A checkout whose answer is lost: the first POST /v1/orders reaches the
// gateway (which places the order), but the browser is told 503 with
// Retry-After: 1, as when a load balancer drops the answer. The app retries
// the same checkout with the same Idempotency-Key, so the customer ends with
// one order, not two.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import {
  addToCart,
  api,
  assertNoPageErrors,
  checkout,
  lastToken,
  launch,
  newCustomer,
  screenshot,
  signIn,
  waitForStatus,
  withSession,
} from "./support.mjs";

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

test(
  "a checkout retried after a forced 503 creates one order, not two",
  { timeout: 120_000 },
  async () => {
    await withSession(browser, "checkout-retried", {}, async (session) => {
      const { page } = session;
      const customer = await newCustomer("retry");
      await signIn(session, customer);
      const token = lastToken(session);
      const before = await api("GET", "/v1/orders", { token });
      assert.equal(before.status, 200, before.text);
      assert.deepEqual(before.json.items, [], "a new customer has no orders yet");

      const posts = [];
      await page.route("**/v1/orders", async (route) => {
        const request = route.request();
        if (request.method() !== "POST") return route.continue();
        // Every POST reaches the gateway; only the first answer is replaced.
        const response = await route.fetch();
        const post = {
          key: request.headers()["idempotency-key"],
          status: response.status(),
          replayed: response.headers()["idempotent-replayed"] ?? null,
        };
        posts.push(post);
        if (posts.length === 1) {
          return route.fulfill({
            status: 503,
            headers: { "Content-Type": "application/json", "Retry-After": "1" },
            body: JSON.stringify({
              error: {
                code: "service_unavailable",
                message: "the orders service is unavailable, retry later",
                details: null,
              },
            }),
          });
        }
        return route.fulfill({ response });
      });

      await addToCart(session, "Sticker pack", 2);
      const orderId = await checkout(session, "Visa (succeeds)", { timeout: 30_000 });
      await waitForStatus(session, "confirmed");
      await screenshot(session, "flow-order-after-retry");

      assert.equal(posts.length, 2, `POST /v1/orders sent ${posts.length} times`);
      const [first, second] = posts;
      assert.ok(first.key, "the first POST /v1/orders carried no Idempotency-Key");
      assert.equal(second.key, first.key, "the retry carried another Idempotency-Key");
      assert.equal(first.status, 202, "the first POST did not place the order");
      assert.equal(second.status, 202);
      assert.equal(second.replayed, "true", "the retry was not answered as a replay");

      const afterwards = await api("GET", "/v1/orders", { token: lastToken(session) });
      assert.equal(afterwards.status, 200, afterwards.text);
      assert.deepEqual(
        afterwards.json.items.map((order) => order.id),
        [orderId],
        "the customer should have exactly the one order the page shows",
      );
      assertNoPageErrors(session);
    });
  },
);
