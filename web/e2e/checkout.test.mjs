// A customer's purchase in the browser: sign in on Agora's authorize page,
// search, add two products, check out with a test card, follow the order to
// its end. The succeeding card ends `confirmed`; the declined one `cancelled`
// with the reason shown; a confirmed order the customer cancels is refunded.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import {
  addToCart,
  api,
  assertNoPageErrors,
  checkout,
  findProduct,
  lastToken,
  launch,
  orderStatus,
  poll,
  screenshot,
  settings,
  signIn,
  textOf,
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
  'a customer buys two products with "Visa (succeeds)" and sees the order confirmed',
  { timeout: 120_000 },
  async () => {
    await withSession(browser, "checkout-confirmed", {}, async (session) => {
      const { page } = session;
      await signIn(session, settings.user);
      const mug = await findProduct("Stoa coffee mug");
      const notebook = await findProduct("Dialogue notebook");
      await addToCart(session, mug.name, 1);
      await addToCart(session, notebook.name, 2);
      const orderId = await checkout(session, "Visa (succeeds)");
      await page.getByRole("heading", { name: /^Order / }).waitFor();
      await waitForStatus(session, "confirmed");
      await screenshot(session, "flow-order-confirmed");

      // The API agrees: this customer's order, both lines, confirmed.
      const answer = await api("GET", `/v1/orders/${orderId}`, { token: lastToken(session) });
      assert.equal(answer.status, 200, answer.text);
      assert.equal(answer.json.status, "confirmed");
      const lines = Object.fromEntries(
        answer.json.items.map((line) => [line.product_id, line.quantity]),
      );
      assert.deepEqual(lines, { [mug.id]: 1, [notebook.id]: 2 });
      assertNoPageErrors(session);
    });
  },
);

test(
  'the "Declined" card ends the order cancelled, with the reason shown',
  { timeout: 120_000 },
  async () => {
    await withSession(browser, "checkout-declined", {}, async (session) => {
      const { page } = session;
      await signIn(session, settings.user);
      await addToCart(session, "Socratic pen", 1);
      const orderId = await checkout(session, "Declined");
      await waitForStatus(session, "cancelled");
      const reason = page.getByLabel("Cancellation reason");
      await textOf(reason, /declined/i);
      assert.ok(await reason.isVisible(), "the cancellation reason is not visible");
      assert.match((await orderStatus(page).textContent()) ?? "", /cancelled/i);
      await screenshot(session, "flow-order-declined");

      const answer = await api("GET", `/v1/orders/${orderId}`, { token: lastToken(session) });
      assert.equal(answer.status, 200, answer.text);
      assert.equal(answer.json.status, "cancelled");
      assert.equal(answer.json.payment.failure.code, "card_declined");
      assertNoPageErrors(session);
    });
  },
);

test("a customer cancels a confirmed order and it is refunded", { timeout: 120_000 }, async () => {
  await withSession(browser, "checkout-cancelled", {}, async (session) => {
    const { page } = session;
    await signIn(session, settings.user);
    await addToCart(session, "Parthenon poster", 1);
    const orderId = await checkout(session, "Visa (succeeds)");
    await waitForStatus(session, "confirmed");
    await page.getByRole("button", { name: "Cancel order" }).click();
    await waitForStatus(session, "cancelled");
    await poll("the refund to be recorded", async () => {
      const answer = await api("GET", `/v1/orders/${orderId}`, { token: lastToken(session) });
      return answer.json?.payment?.status === "refunded";
    });
    assert.equal(await page.getByRole("button", { name: "Cancel order" }).count(), 0);
    await screenshot(session, "flow-order-cancelled-by-customer");
    assertNoPageErrors(session);
  });
});
