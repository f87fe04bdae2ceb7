// What the user sees when things go wrong, and that the app gets over it: a
// 429 retried after its Retry-After, a lost connection shown as such and
// recovered from, the browser going offline and back, and an API validation
// error shown next to its field.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import {
  assertNoPageErrors,
  findProduct,
  launch,
  newCustomer,
  poll,
  screenshot,
  settle,
  signIn,
  textOf,
  visit,
  withSession,
} from "./support.mjs";

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

async function search(page, text) {
  await page.getByRole("searchbox", { name: "Search products" }).fill(text);
  await page.getByRole("button", { name: "Search", exact: true }).click();
}

function productCard(page, name) {
  return page.getByRole("article").filter({ has: page.getByRole("heading", { name }) });
}

function banner(page) {
  return page.getByRole("alert").filter({ hasText: /offline|connection/i });
}

test(
  "a 429 is retried after its Retry-After and the results show",
  { timeout: 60_000 },
  async () => {
    await withSession(browser, "errors-429", {}, async (session) => {
      const { page } = session;
      const product = await findProduct("Colonnade cap");
      await page.goto("/");
      await settle(session);
      const asked = [];
      const productList = (url) => url.pathname === "/v1/products";
      await page.route(productList, async (route) => {
        const url = new URL(route.request().url());
        if (url.searchParams.get("q") !== product.name) return route.continue();
        asked.push(url.search);
        if (asked.length > 1) return route.continue();
        return route.fulfill({
          status: 429,
          headers: { "Content-Type": "application/json", "Retry-After": "1" },
          body: JSON.stringify({
            error: { code: "rate_limited", message: "too many requests", details: null },
          }),
        });
      });
      await search(page, product.name);
      // The unfiltered catalog shows this product too: wait for the retry,
      // then for its answer on the page.
      await poll("the search to be asked again after its 429", () => asked.length >= 2);
      await settle(session);
      await productCard(page, product.name).waitFor();
      // Answered 429 once, then asked again (the same search) and shown.
      assert.ok(asked.length >= 2, `the search was asked ${asked.length} times`);
      assert.ok(
        asked.every((search) => search === asked[0]),
        `the searches differ: ${JSON.stringify(asked)}`,
      );
      const alerts = await page.getByRole("alert").allTextContents();
      assert.deepEqual(alerts, [], "an error is still shown");
      assertNoPageErrors(session);
    });
  },
);

test("a lost connection shows as such, and the app recovers", { timeout: 90_000 }, async () => {
  await withSession(browser, "errors-connection-lost", {}, async (session) => {
    const { page } = session;
    const product = await findProduct("Amphora bottle");
    await page.goto("/");
    await settle(session);
    // The gateway stops answering: every API call fails at the network level.
    const api = (url) => url.pathname.startsWith("/v1/");
    const refuse = (route) => route.abort("connectionrefused");
    await page.route(api, refuse);
    await search(page, product.name);
    await textOf(banner(page), /connection|offline/i);
    await screenshot(session, "flow-connection-lost");

    await page.unroute(api, refuse);
    // The banner goes by itself (the app probes the gateway), then the
    // search works again.
    await banner(page).waitFor({ state: "detached", timeout: 30_000 });
    await search(page, product.name);
    await productCard(page, product.name).waitFor();
    assertNoPageErrors(session);
  });
});

test(
  "the browser going offline and back shows and clears the banner",
  { timeout: 60_000 },
  async () => {
    await withSession(browser, "errors-offline", {}, async (session) => {
      const { page, context } = session;
      await page.goto("/");
      await settle(session);
      await context.setOffline(true);
      await textOf(banner(page), /offline/i);
      await context.setOffline(false);
      await banner(page).waitFor({ state: "detached" });
      assertNoPageErrors(session);
    });
  },
);

test("an API validation error shows next to its field", { timeout: 60_000 }, async () => {
  await withSession(browser, "errors-validation", {}, async (session) => {
    const { page } = session;
    const customer = await newCustomer("invalid");
    await signIn(session, customer);
    await visit(session, "/profile");
    const phone = page.getByLabel("Phone", { exact: true });
    await phone.fill("12345");
    const answer = page.waitForResponse(
      (response) =>
        response.request().method() === "PATCH" &&
        new URL(response.url()).pathname === "/v1/users/me",
    );
    await page.getByRole("button", { name: "Save profile" }).click();
    const response = await answer;
    assert.equal(response.status(), 400, await response.text());
    assert.equal((await response.json()).error.code, "validation_error");

    await attributeBecomes(phone, "aria-invalid", "true");
    const described = (await phone.getAttribute("aria-describedby")) ?? "";
    const messages = await Promise.all(
      described
        .split(/\s+/)
        .filter(Boolean)
        .map((id) => page.locator(`[id="${id}"]`).textContent()),
    );
    assert.ok(
      messages.some((text) => /phone/i.test(text ?? "") && /E\.164|format|valid/i.test(text)),
      `the Phone field describes no error: ${JSON.stringify(messages)}`,
    );
    await screenshot(session, "flow-profile-validation-error");
    assertNoPageErrors(session);
  });
});

async function attributeBecomes(locator, attribute, value) {
  await locator
    .page()
    .waitForFunction(
      ([element, name, wanted]) => element.getAttribute(name) === wanted,
      [await locator.elementHandle(), attribute, value],
    );
}
