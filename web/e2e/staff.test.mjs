// The back office at work: an admin sets a product's stock in a warehouse and
// the shop shows it; an admin refunds a customer's payment in full.

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, test } from "node:test";

import {
  addToCart,
  api,
  assertNoPageErrors,
  checkout,
  lastToken,
  launch,
  newCustomer,
  poll,
  screenshot,
  settings,
  signIn,
  textOf,
  visit,
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

function answerTo(page, method, path) {
  return page.waitForResponse(
    (response) =>
      response.request().method() === method && new URL(response.url()).pathname === path,
    { timeout: 30_000 },
  );
}

test("an admin sets stock in a warehouse and the shop shows it", { timeout: 120_000 }, async () => {
  const sku = `E2E-STK-${randomUUID().slice(0, 8).toUpperCase()}`;
  const name = `E2E lantern ${sku.slice(-8)}`;
  let product;

  await withSession(browser, "staff-stock", {}, async (session) => {
    const { page } = session;
    await signIn(session, settings.admin);
    await visit(session, "/staff");
    const created = await api("POST", "/v1/products", {
      token: lastToken(session),
      body: { sku, name, price: { amount: 2500, currency: "EUR" } },
    });
    assert.equal(created.status, 201, created.text);
    product = created.json;

    await visit(session, `/staff/stock?sku=${sku}`);
    await page.getByLabel("Warehouse", { exact: true }).fill("e2e-hall");
    await page.getByLabel("On hand", { exact: true }).fill("3");
    const saved = answerTo(page, "PUT", `/v1/inventory/${sku}`);
    await page.getByRole("button", { name: "Set stock" }).click();
    const response = await saved;
    assert.equal(response.status(), 200, await response.text());
    // The warehouse's row: on hand 3, none reserved, 3 available.
    const row = page.getByRole("row").filter({ hasText: "e2e-hall" });
    await poll("the stock table to list e2e-hall", async () => {
      const cells = await row.locator("th, td").allTextContents();
      return JSON.stringify(cells.map((text) => text.trim())) === '["e2e-hall","3","0","3"]';
    });
    await screenshot(session, "flow-staff-stock-set");
    assertNoPageErrors(session);
  });

  await withSession(browser, "staff-stock-shopper", {}, async (session) => {
    const { page } = session;
    await page.goto(`/products/${product.id}`);
    await page.getByRole("heading", { level: 1, name }).waitFor();
    await textOf(page.getByLabel("Availability"), /Only 3 left/);
    assertNoPageErrors(session);
  });
});

test("an admin refunds a customer's payment in full", { timeout: 150_000 }, async () => {
  let paymentId;
  await withSession(browser, "staff-refund-customer", {}, async (session) => {
    await signIn(session, await newCustomer("refund"));
    await addToCart(session, "Dialogue notebook", 1);
    const orderId = await checkout(session, "Visa (succeeds)");
    await waitForStatus(session, "confirmed");
    const order = await api("GET", `/v1/orders/${orderId}`, { token: lastToken(session) });
    paymentId = order.json.payment.id;
    assert.equal(order.json.payment.status, "succeeded");
  });

  await withSession(browser, "staff-refund", {}, async (session) => {
    const { page } = session;
    await signIn(session, settings.admin);
    await visit(session, `/staff/payments/${paymentId}`);
    await page.getByRole("button", { name: "Refund", exact: true }).click();
    const refunded = answerTo(page, "POST", `/v1/payments/${paymentId}/refunds`);
    await page.getByRole("button", { name: "Confirm refund" }).click();
    const response = await refunded;
    assert.ok([200, 201].includes(response.status()), await response.text());
    const payment = await api("GET", `/v1/payments/${paymentId}`, { token: lastToken(session) });
    assert.equal(payment.status, 200, payment.text);
    assert.equal(payment.json.status, "refunded");
    await textOf(page.locator("main"), /refunded/i);
    await screenshot(session, "flow-staff-refunded");
    assertNoPageErrors(session);
  });
});
