// What every browser scenario shares: the settings the pytest wrapper
// (tests/e2e/test_web_browser.py) passes in the environment, the system
// Chromium launched through playwright-core (no browser download), a page that
// records its uncaught errors and API traffic, and the steps a person takes in
// the app (sign in on the authorize page, search, add to cart, check out).
//
// The app keeps its tokens in memory, so a full page load signs the user out:
// scenarios move between pages by clicking, or with `visit`, which changes
// the route the way the app's own links do (history.pushState + popstate).

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { deflateSync } from "node:zlib";

import { chromium } from "playwright-core";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "..", "..");
const env = process.env;

export const settings = {
  baseURL: (env.AGORA_E2E_BASE_URL || "http://127.0.0.1:8080").replace(/\/$/, ""),
  user: {
    email: env.AGORA_E2E_USER_EMAIL || "demo@agora.local",
    password: env.AGORA_E2E_USER_PASSWORD || "agora-demo-password",
  },
  admin: {
    email: env.AGORA_E2E_ADMIN_EMAIL || "admin@agora.local",
    password: env.AGORA_E2E_ADMIN_PASSWORD || "agora-admin-password",
  },
  screenshots: env.AGORA_E2E_SCREENSHOTS || path.join(ROOT, ".agora", "screenshots"),
  reports: env.AGORA_E2E_REPORTS || path.join(ROOT, ".agora", "e2e"),
  chromium: env.AGORA_E2E_CHROMIUM || "/usr/bin/chromium",
  args: (
    env.AGORA_E2E_CHROMIUM_ARGS ||
    "--headless --no-sandbox --disable-gpu --disable-background-networking"
  )
    .split(/\s+/)
    .filter(Boolean),
  // How long the saga may take to reach a terminal state in the browser.
  sagaTimeout: Number(env.AGORA_E2E_SAGA_TIMEOUT || 45) * 1000,
};

export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 390, height: 844 };
const STEP_TIMEOUT = 15_000;

export async function launch() {
  return chromium.launch({ executablePath: settings.chromium, args: settings.args });
}

// A fresh context (no cookies, no storage) and its page. `session.errors`
// collects uncaught page errors and console errors; `session.apiRequests` every
// request to /v1/ and /oauth/ (method, path, headers) for later assertions.
// `bypassCSP` lets a scenario inject axe-core into pages whose Content-Security-Policy
// allows no inline script.
export async function openSession(
  browser,
  { viewport = DESKTOP, name = "session", bypassCSP = false } = {},
) {
  const context = await browser.newContext({ baseURL: settings.baseURL, viewport, bypassCSP });
  context.setDefaultTimeout(STEP_TIMEOUT);
  const page = await context.newPage();
  const session = { name, context, page, errors: [], console: [], apiRequests: [], inFlight: 0 };
  page.on("pageerror", (error) => session.errors.push(`${page.url()}: ${error.stack || error}`));
  page.on("console", (message) => {
    if (message.type() === "error") session.console.push(`${page.url()}: ${message.text()}`);
  });
  // Server-sent events and sockets stay open: they are not "loading".
  const counted = (request) => !["eventsource", "websocket"].includes(request.resourceType());
  page.on("request", (request) => {
    const url = new URL(request.url());
    if (url.origin === settings.baseURL && /^\/(v1|oauth)\//.test(url.pathname)) {
      session.apiRequests.push({
        method: request.method(),
        path: url.pathname,
        search: url.search,
        headers: request.headers(),
      });
    }
    if (counted(request)) session.inFlight += 1;
  });
  const done = (request) => {
    if (counted(request)) session.inFlight -= 1;
  };
  page.on("requestfinished", done);
  page.on("requestfailed", done);
  return session;
}

// Runs `scenario(session)` in a fresh session; on failure saves a screenshot
// (failed-<name>.png) and says where the page was, then closes the context.
export async function withSession(browser, name, options, scenario) {
  const session = await openSession(browser, { name, ...options });
  try {
    await scenario(session);
  } catch (error) {
    let shot = "(no screenshot)";
    try {
      shot = await screenshot(session, `failed-${name}`);
    } catch {
      // the page may be gone; the error below is what matters
    }
    const where = `${name} was at ${session.page.url()}; screenshot: ${shot}`;
    console.log(where);
    error.message += `\n  ${where}`;
    throw error;
  } finally {
    await session.context.close();
  }
}

// No uncaught error in the page, and no console error other than the browser's
// own note about an HTTP error answer (which a scenario may provoke on purpose).
export function assertNoPageErrors(session) {
  assert.deepEqual(session.errors, [], `uncaught errors in ${session.name}`);
  const unexpected = session.console.filter((line) => !/Failed to load resource/.test(line));
  assert.deepEqual(unexpected, [], `console errors in ${session.name}`);
}

// --- waiting on conditions ----------------------------------------------------

export async function poll(what, check, { timeout = STEP_TIMEOUT, interval = 100 } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await check();
      if (last) return last;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeout} ms waiting for ${what} (last: ${last})`);
    }
    await new Promise((resolve) => setTimeout(resolve, interval));
  }
}

// Until no request has been in flight for a moment (the page has loaded its data).
export async function settle(session, { quiet = 300, timeout = STEP_TIMEOUT } = {}) {
  let idleSince = null;
  await poll(
    "the network to go quiet",
    () => {
      if (session.inFlight > 0) {
        idleSince = null;
        return false;
      }
      idleSince ??= Date.now();
      return Date.now() - idleSince >= quiet;
    },
    { timeout, interval: 50 },
  );
}

export async function textOf(locator, pattern, { timeout = STEP_TIMEOUT } = {}) {
  return poll(
    `${locator} to read ${pattern}`,
    async () => {
      const text = (await locator.textContent({ timeout: 1000 })) ?? "";
      if (!pattern.test(text)) throw new Error(JSON.stringify(text));
      return text;
    },
    { timeout },
  );
}

// The app's own navigation: pushState then popstate, which the router follows.
export async function visit(session, route) {
  const { page } = session;
  await page.evaluate((target) => {
    window.history.pushState({}, "", target);
    window.dispatchEvent(new PopStateEvent("popstate", { state: window.history.state }));
  }, route);
  await poll(
    `the app to show ${route}`,
    () => new URL(page.url()).pathname === route.split("?")[0],
  );
  await page.locator("main").first().waitFor();
  await settle(session);
}

export async function screenshot(session, name) {
  mkdirSync(settings.screenshots, { recursive: true });
  const file = path.join(settings.screenshots, `${name}.png`);
  await session.page.screenshot({ path: file, fullPage: true });
  return file;
}

export function writeReport(name, data) {
  mkdirSync(settings.reports, { recursive: true });
  const file = path.join(settings.reports, name);
  writeFileSync(file, JSON.stringify(data, null, 2) + "\n");
  return file;
}

// --- the public API, for set-up and for checking outcomes ---------------------

export async function api(method, route, { token, body, headers = {} } = {}) {
  const response = await fetch(settings.baseURL + route, {
    method,
    headers: {
      ...(body === undefined ? {} : { "Content-Type": "application/json" }),
      ...(token ? { Authorization: `Bearer ${token}` } : {}),
      ...headers,
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  return { status: response.status, headers: response.headers, json, text };
}

// A customer of this scenario alone (POST /v1/users), so that what it counts
// (its orders) is its own whatever else runs against the platform.
export async function newCustomer(label) {
  const email = `e2e-${label}-${randomUUID().slice(0, 8)}@example.com`;
  const password = `browser-${randomUUID()}`;
  const answer = await api("POST", "/v1/users", {
    body: { email, password, name: `E2E ${label}` },
  });
  assert.equal(answer.status, 201, `registering ${email}: ${answer.text}`);
  return { email, password, id: answer.json.id };
}

export async function findProduct(name) {
  const answer = await api("GET", `/v1/products?q=${encodeURIComponent(name)}&limit=20`);
  assert.equal(answer.status, 200, answer.text);
  const product = answer.json.items.find((item) => item.name === name);
  assert.ok(product, `no product named ${name}: ${answer.text}`);
  return product;
}

// The bearer token the app sent last (for API checks as the signed-in user).
export function lastToken(session) {
  for (const request of [...session.apiRequests].reverse()) {
    const header = request.headers.authorization;
    if (header && header.startsWith("Bearer ")) return header.slice("Bearer ".length);
  }
  throw new Error(`${session.name}: the app sent no bearer token yet`);
}

// --- what a person does in the app --------------------------------------------

export function header(page) {
  return page.getByRole("navigation", { name: "Main" });
}

// Sign in through Agora's authorize page: "Sign in" (or "Staff sign in" when
// the app offers it and `staff`), Email, Password, "Allow", back in the app.
// `onAuthorizePage(session)` runs while the authorize page shows (axe, screenshots).
export async function signIn(session, who, { staff = false, onAuthorizePage } = {}) {
  const { page } = session;
  if (!page.url().startsWith(settings.baseURL)) {
    await page.goto("/");
  }
  await page.locator("main").first().waitFor();
  const staffButton = page.getByRole("button", { name: "Staff sign in" });
  if (staff && (await staffButton.count()) > 0) {
    await staffButton.first().click();
  } else {
    await page.getByRole("button", { name: "Sign in", exact: true }).first().click();
  }
  await page.waitForURL((url) => url.pathname.startsWith("/oauth/authorize"));
  await page.getByLabel("Email").fill(who.email);
  await page.getByLabel("Password").fill(who.password);
  if (onAuthorizePage) await onAuthorizePage(session);
  await page.getByRole("button", { name: "Allow" }).click();
  await page.waitForURL(
    (url) => !url.pathname.startsWith("/oauth/") && !url.pathname.startsWith("/auth/callback"),
  );
  await page.getByRole("button", { name: "Sign out" }).waitFor();
  await settle(session);
}

// From anywhere in the app: search the catalog for `name`, open its page,
// set the quantity and add it to the cart; returns the product page's heading.
export async function addToCart(session, name, quantity = 1) {
  const { page } = session;
  const cartLink = header(page).getByRole("link", { name: /^Cart/ });
  const before = (await cartLink.textContent()) ?? "";
  await header(page).getByRole("link", { name: "Catalog", exact: true }).click();
  await page.getByRole("searchbox", { name: "Search products" }).fill(name);
  await page.getByRole("button", { name: "Search", exact: true }).click();
  const article = page.getByRole("article").filter({ has: page.getByRole("heading", { name }) });
  await article.getByRole("link", { name }).first().click();
  await page.getByRole("heading", { level: 1, name }).waitFor();
  await settle(session);
  const amount = page.getByRole("spinbutton", { name: "Quantity" });
  if ((await amount.count()) > 0) await amount.fill(String(quantity));
  await page.getByRole("button", { name: "Add to cart" }).click();
  await poll(`the cart link to change after adding ${name}`, async () => {
    return ((await cartLink.textContent()) ?? "") !== before;
  });
}

// Cart -> Checkout -> the test card -> "Place order"; returns the order id the
// app navigated to (/orders/<id>).
export async function checkout(session, card, { timeout = STEP_TIMEOUT } = {}) {
  const { page } = session;
  await header(page).getByRole("link", { name: /^Cart/ }).click();
  await page.getByRole("button", { name: "Checkout" }).click();
  await page.getByLabel("Test card").selectOption({ label: card });
  await page.getByRole("button", { name: "Place order" }).click();
  await page.waitForURL((url) => /^\/orders\/[0-9a-f-]{36}$/.test(url.pathname), { timeout });
  return new URL(page.url()).pathname.split("/").pop();
}

export function orderStatus(page) {
  return page.getByRole("status", { name: "Order status" });
}

// Until the order page's status element names `status` (the API's word).
export async function waitForStatus(session, status) {
  return textOf(orderStatus(session.page), new RegExp(`\\b${status}\\b`, "i"), {
    timeout: settings.sagaTimeout,
  });
}

// --- a PNG made here, so the upload needs no fixture file -----------------------

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k += 1) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(buffer) {
  let crc = 0xffffffff;
  for (const byte of buffer) crc = CRC_TABLE[(crc ^ byte) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

function chunk(type, data) {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, "ascii"), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

// An RGB PNG of `width` x `height`: diagonal bands of random colours, so every
// run uploads new bytes (content-addressed storage keys differ).
export function makePng(width = 320, height = 240) {
  const colours = Array.from({ length: 4 }, () =>
    Array.from({ length: 3 }, () => Math.floor(Math.random() * 256)),
  );
  const raw = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y += 1) {
    const row = y * (width * 3 + 1);
    raw[row] = 0; // filter: none
    for (let x = 0; x < width; x += 1) {
      const colour = colours[Math.floor((x + y) / 40) % colours.length];
      raw.set(colour, row + 1 + x * 3);
    }
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // colour type: RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", deflateSync(raw)),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}
