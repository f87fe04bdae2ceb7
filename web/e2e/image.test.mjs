// An admin uploads a product image in the back office ("Upload image" on the
// staff product page) and a customer then sees that very image on the
// product's page, served from /media/.

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, test } from "node:test";

import {
  api,
  assertNoPageErrors,
  lastToken,
  launch,
  makePng,
  poll,
  screenshot,
  settings,
  settle,
  signIn,
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

// The <img> for `name` whose src is one of `urls`, once it has loaded:
// { src, naturalWidth, complete } or null.
async function loadedImage(page, name, urls) {
  return page.evaluate(
    ({ alt, wanted }) => {
      for (const img of document.querySelectorAll("img")) {
        if (img.getAttribute("alt") !== alt) continue;
        if (!wanted.includes(img.currentSrc || img.src) && !wanted.includes(img.src)) continue;
        if (img.complete && img.naturalWidth > 0) {
          return { src: img.src, naturalWidth: img.naturalWidth };
        }
      }
      return null;
    },
    { alt: name, wanted: urls },
  );
}

test(
  "an admin uploads an image and the customer sees it on the product page",
  { timeout: 150_000 },
  async () => {
    const name = `E2E poster ${randomUUID().slice(0, 8)}`;
    let product;
    let uploaded;

    await withSession(browser, "image-upload-admin", {}, async (session) => {
      const { page } = session;
      await signIn(session, settings.admin, { staff: true });
      await visit(session, "/staff");
      const adminToken = lastToken(session);
      // A product of this run alone, without images, created the way an
      // integration would; the upload itself goes through the page.
      const created = await api("POST", "/v1/products", {
        token: adminToken,
        body: {
          sku: `E2E-IMG-${randomUUID().slice(0, 8).toUpperCase()}`,
          name,
          description: "A product whose image the browser test uploads.",
          price: { amount: 1500, currency: "EUR" },
        },
      });
      assert.equal(created.status, 201, `creating the product: ${created.text}`);
      product = created.json;
      assert.deepEqual(product.images, []);

      await visit(session, `/staff/products/${product.id}`);
      const answer = page.waitForResponse(
        (response) =>
          response.request().method() === "POST" &&
          new URL(response.url()).pathname === `/v1/products/${product.id}/images`,
        { timeout: 30_000 },
      );
      await page
        .getByLabel("Upload image")
        .setInputFiles({ name: "poster.png", mimeType: "image/png", buffer: makePng() });
      const response = await answer;
      assert.equal(response.status(), 201, `the upload answered ${await response.text()}`);
      const body = await response.json();
      assert.equal(body.images.length, 1, JSON.stringify(body.images));
      [uploaded] = body.images;
      for (const url of Object.values(uploaded.urls)) {
        assert.match(new URL(url).pathname, /^\/media\//, `image URL ${url}`);
      }
      await settle(session);
      await screenshot(session, "flow-staff-image-uploaded");
      assertNoPageErrors(session);
    });

    // A customer (not signed in: the catalog is public) finds the product.
    await withSession(browser, "image-customer", {}, async (session) => {
      const { page } = session;
      const urls = Object.values(uploaded.urls);
      await page.goto("/");
      await page.getByRole("searchbox", { name: "Search products" }).fill(name);
      await page.getByRole("button", { name: "Search", exact: true }).click();
      const article = page
        .getByRole("article")
        .filter({ has: page.getByRole("heading", { name }) });
      await article.getByRole("link", { name }).first().click();
      const heading = page.getByRole("heading", { level: 1, name });
      await heading.waitFor();
      // The gateway's catalog cache drops the product when the catalog's
      // product_updated event arrives; a customer who came too early reloads.
      let shown = null;
      for (let load = 0; load < 5 && !shown; load += 1) {
        if (load > 0) {
          await page.reload();
          await heading.waitFor();
        }
        shown = await poll("the uploaded image to load", () => loadedImage(page, name, urls), {
          timeout: 5_000,
        }).catch(() => null);
      }
      assert.ok(shown, `no loaded <img alt="${name}"> with src in ${urls} after 5 page loads`);
      assert.ok(shown.naturalWidth > 0);
      assert.match(new URL(shown.src).pathname, /^\/media\//);
      const image = await fetch(shown.src);
      assert.equal(image.status, 200);
      assert.match(image.headers.get("content-type") ?? "", /^image\//);
      await screenshot(session, "flow-product-with-image");
      assertNoPageErrors(session);
    });
  },
);
