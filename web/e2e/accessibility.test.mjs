// Every page of the app checked with axe-core, at desktop size and (the
// customer's pages) at phone size: no serious or critical violation, and no
// horizontal scrolling on a 390 px wide screen. The full axe results (every
// impact) go to <reports>/axe.json, a screenshot of each page to
// <screenshots>/{desktop,phone}-<page>.png.

import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { after, before, test } from "node:test";

import {
  DESKTOP,
  PHONE,
  api,
  assertNoPageErrors,
  findProduct,
  header,
  lastToken,
  launch,
  newCustomer,
  screenshot,
  settings,
  settle,
  signIn,
  visit,
  waitForStatus,
  withSession,
  writeReport,
} from "./support.mjs";

const AXE = createRequire(import.meta.url).resolve("axe-core/axe.min.js");
const FAILING = new Set(["serious", "critical"]);
const audits = [];

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
  const file = writeReport("axe.json", {
    base_url: settings.baseURL,
    generated_at: new Date().toISOString(),
    pages: audits,
  });
  console.log(`axe results of ${audits.length} page views: ${file}`);
});

function nodeSummary(node) {
  return { target: node.target, html: node.html, summary: node.failureSummary ?? null };
}

function ruleSummary(rule) {
  return {
    id: rule.id,
    impact: rule.impact,
    help: rule.help,
    helpUrl: rule.helpUrl,
    tags: rule.tags,
    nodes: rule.nodes.map(nodeSummary),
  };
}

// axe on the page as it is now; records the results and a screenshot and, at
// phone size, whether the page scrolls sideways. Returns the failures found.
async function audit(session, name, viewport) {
  const { page } = session;
  await settle(session);
  if (!(await page.evaluate(() => typeof window.axe === "object"))) {
    await page.addScriptTag({ path: AXE });
  }
  const results = await page.evaluate(async () => {
    const found = await window.axe.run(document, { resultTypes: ["violations", "incomplete"] });
    return {
      version: found.testEngine.version,
      violations: found.violations,
      incomplete: found.incomplete,
      passes: found.passes.length,
    };
  });
  const size = await page.evaluate(() => ({
    scrollWidth: document.documentElement.scrollWidth,
    innerWidth: window.innerWidth,
  }));
  const shown = await page.evaluate(() => ({
    headings: [...document.querySelectorAll("h1")].map((h) => h.textContent.trim()),
    alerts: [...document.querySelectorAll('[role="alert"]')]
      .filter((element) => element.getClientRects().length > 0)
      .map((element) => element.textContent.trim())
      .filter(Boolean),
    placeholder: /not built yet/.test(document.body.textContent),
  }));
  const label = viewport === PHONE ? "phone" : "desktop";
  const record = {
    page: name,
    viewport: label,
    url: new URL(page.url()).pathname,
    axe_version: results.version,
    violations: results.violations.map(ruleSummary),
    incomplete: results.incomplete.map(ruleSummary),
    passes: results.passes,
    scroll_width: size.scrollWidth,
    inner_width: size.innerWidth,
  };
  audits.push(record);
  await screenshot(session, `${label}-${name}`);
  const where = `${label} ${name} (${record.url})`;
  const failures = record.violations
    .filter((rule) => FAILING.has(rule.impact))
    .map(
      (rule) =>
        `${where}: ${rule.impact} ${rule.id}: ${rule.help} ` +
        `at ${rule.nodes.map((node) => node.target.join(" ")).join(", ")}`,
    );
  // What was checked must be the page itself, working: a heading, no error.
  if (shown.headings.length === 0) failures.push(`${where}: no <h1>`);
  if (shown.headings.some((text) => /not found|failed/i.test(text))) {
    failures.push(`${where}: shows ${JSON.stringify(shown.headings)}`);
  }
  if (shown.placeholder) failures.push(`${where}: a placeholder, the page is not built`);
  if (shown.alerts.length > 0) failures.push(`${where}: alerts ${JSON.stringify(shown.alerts)}`);
  if (viewport === PHONE && size.scrollWidth > size.innerWidth) {
    failures.push(`${where}: scrolls sideways, ${size.scrollWidth} px in ${size.innerWidth} px`);
  }
  const counts = {};
  for (const rule of record.violations) counts[rule.impact] = (counts[rule.impact] ?? 0) + 1;
  console.log(`axe ${label} ${name}: ${JSON.stringify(counts)}`);
  return failures;
}

async function auditRoutes(session, routes, viewport) {
  await session.page.setViewportSize(viewport);
  const failures = [];
  for (const [name, route] of routes) {
    await visit(session, route);
    failures.push(...(await audit(session, name, viewport)));
  }
  return failures;
}

function assertNoFailures(failures) {
  assert.deepEqual(failures, [], `accessibility failures:\n${failures.join("\n")}`);
}

let paymentId = null;

test("axe finds what it should: a control page with known violations", async () => {
  await withSession(browser, "a11y-control", { bypassCSP: true }, async (session) => {
    await session.page.setContent(
      '<!doctype html><html><body><main><img src="data:,"><button></button></main></body></html>',
    );
    await session.page.addScriptTag({ path: AXE });
    const found = await session.page.evaluate(async () => {
      const results = await window.axe.run(document);
      return results.violations.map((rule) => `${rule.id}:${rule.impact}`);
    });
    assert.ok(found.includes("image-alt:critical"), JSON.stringify(found));
    assert.ok(found.includes("button-name:critical"), JSON.stringify(found));
  });
});

test("the customer's pages, desktop and phone", { timeout: 180_000 }, async () => {
  await withSession(browser, "a11y-customer", { bypassCSP: true }, async (session) => {
    const { page } = session;
    const failures = [];
    const customer = await newCustomer("a11y");
    const product = await findProduct("Market tote bag");

    await page.goto("/");
    failures.push(...(await audit(session, "catalog-signed-out", DESKTOP)));
    await signIn(session, customer, {
      onAuthorizePage: async () => {
        failures.push(...(await audit(session, "authorize", DESKTOP)));
      },
    });
    failures.push(...(await audit(session, "catalog", DESKTOP)));

    await page.getByRole("searchbox", { name: "Search products" }).fill(product.name);
    await page.getByRole("button", { name: "Search", exact: true }).click();
    await page.getByRole("link", { name: product.name }).first().click();
    await page.getByRole("heading", { level: 1, name: product.name }).waitFor();
    failures.push(...(await audit(session, "product", DESKTOP)));
    await page.getByRole("button", { name: "Add to cart" }).click();
    await header(page).getByRole("link", { name: /^Cart/ }).click();
    await page.getByRole("button", { name: "Checkout" }).waitFor();
    failures.push(...(await audit(session, "cart", DESKTOP)));
    await page.getByRole("button", { name: "Checkout" }).click();
    await page.getByLabel("Test card").waitFor();
    failures.push(...(await audit(session, "checkout", DESKTOP)));

    // The pages that need a full cart, at phone size, before the order empties it.
    failures.push(
      ...(await auditRoutes(
        session,
        [
          ["catalog", "/"],
          ["product", `/products/${product.id}`],
          ["cart", "/cart"],
          ["checkout", "/checkout"],
        ],
        PHONE,
      )),
    );
    await page.setViewportSize(DESKTOP);

    await page.getByLabel("Test card").selectOption({ label: "Visa (succeeds)" });
    await page.getByRole("button", { name: "Place order" }).click();
    await page.waitForURL((url) => /^\/orders\/[0-9a-f-]{36}$/.test(url.pathname));
    const orderId = new URL(page.url()).pathname.split("/").pop();
    await waitForStatus(session, "confirmed");
    failures.push(...(await audit(session, "order", DESKTOP)));
    const order = await api("GET", `/v1/orders/${orderId}`, { token: lastToken(session) });
    paymentId = order.json?.payment?.id ?? order.json?.payment_id ?? null;

    const later = [
      ["orders", "/orders"],
      ["notifications", "/notifications"],
      ["profile", "/profile"],
    ];
    failures.push(...(await auditRoutes(session, later, DESKTOP)));
    failures.push(
      ...(await auditRoutes(session, [["order", `/orders/${orderId}`], ...later], PHONE)),
    );
    assertNoPageErrors(session);
    assertNoFailures(failures);
  });
});

test("the catalog and the authorize page at phone size", { timeout: 60_000 }, async () => {
  await withSession(
    browser,
    "a11y-phone-sign-in",
    { bypassCSP: true, viewport: PHONE },
    async (session) => {
      const { page } = session;
      const failures = [];
      await page.goto("/");
      failures.push(...(await audit(session, "catalog-signed-out", PHONE)));
      await page.getByRole("button", { name: "Sign in", exact: true }).first().click();
      await page.waitForURL((url) => url.pathname.startsWith("/oauth/authorize"));
      failures.push(...(await audit(session, "authorize", PHONE)));
      assertNoPageErrors(session);
      assertNoFailures(failures);
    },
  );
});

test("the staff pages, as the admin", { timeout: 120_000 }, async () => {
  await withSession(browser, "a11y-staff", { bypassCSP: true }, async (session) => {
    const failures = [];
    await signIn(session, settings.admin, { staff: true });
    const product = await findProduct("Forum hoodie");
    const routes = [
      ["staff", "/staff"],
      ["staff-products", "/staff/products"],
      ["staff-product-new", "/staff/products/new"],
      ["staff-product", `/staff/products/${product.id}`],
      ["staff-stock", "/staff/stock"],
      ["staff-payments", "/staff/payments"],
    ];
    if (!paymentId) {
      // This test alone: the newest payment of the billing list, if any.
      const payments = await api("GET", "/v1/payments?limit=1", { token: lastToken(session) });
      paymentId = payments.json?.items?.[0]?.id ?? null;
    }
    if (paymentId) routes.push(["staff-payment", `/staff/payments/${paymentId}`]);
    else console.log("no payment on the platform yet: /staff/payments/<id> not audited");
    routes.push(
      ["staff-dead-letters", "/staff/dead-letters"],
      ["staff-services", "/staff/services"],
    );
    failures.push(...(await auditRoutes(session, routes, DESKTOP)));
    assertNoPageErrors(session);
    assertNoFailures(failures);
  });
});
