// Watch: resources, the news feed and the admin log page. The pages must never
// crash; where the server does not offer an endpoint (404) they say so politely.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { BASE_URL, launch, newPage, openApp, uniqueEmail, registerViaUi, screenshot } from "../lib/harness.mjs";
import { makeZip } from "../lib/zip.mjs";

let browser;
let context;
let page;
let resourcesAvailable = false;

before(async () => {
  browser = await launch();
  ({ context, page } = await newPage(browser));
  await openApp(page);
  await registerViaUi(page, uniqueEmail("watcher"));
  const probe = await context.request.get(`${BASE_URL}/resources`);
  resourcesAvailable = probe.status() === 200;
});

after(async () => {
  if (browser) await browser.close();
});

function assertNoPageErrors(p) {
  assert.deepEqual(p.errors, [], `the page reported errors:\n${p.errors.join("\n")}`);
}

async function settle(p) {
  // Wait until the view has replaced its loading indicator.
  await p.waitForFunction(() => !document.querySelector("#view .loading-inline, #view .loading-screen"));
}

test("the resources page loads (or says it is not available)", async () => {
  await page.getByTestId("nav-resources").click();
  await page.waitForSelector('#view[data-route="resources"]');
  await settle(page);
  if (resourcesAvailable) {
    await page.getByTestId("resource-add-form").waitFor();
    await page.getByTestId("resources-empty").waitFor();
  } else {
    const panel = page.getByTestId("message-panel");
    await panel.waitFor();
    assert.match(await panel.textContent(), /not available/i);
  }
  await screenshot(page, "20-resources");
  assertNoPageErrors(page);
});

test("a URL can be added, filtered by zone, opened and deleted", async (t) => {
  if (!resourcesAvailable) return t.skip("GET /resources is not available on this server");
  await page.getByTestId("resource-url-input").fill("https://example.org/status?verbose=1");
  await page.getByTestId("resource-add-button").click();
  const row = page.getByTestId("resource-row").filter({ hasText: "example.org" });
  await row.waitFor();

  // An invalid URL is refused in the form.
  await page.getByTestId("resource-url-input").fill("not a url");
  await page.getByTestId("resource-add-button").click();
  await page.locator("#resource-url-error").waitFor({ state: "visible" });

  // Filters live in the URL hash.
  await page.getByTestId("filter-zone").fill("com");
  await page.getByTestId("filter-zone").press("Enter");
  await page.waitForFunction(() => location.hash.includes("domain_zone=com"));
  await settle(page);
  await page.getByTestId("resources-empty").waitFor();
  await page.getByTestId("filter-zone").fill("org");
  await page.getByTestId("filter-zone").press("Enter");
  await page.waitForFunction(() => location.hash.includes("domain_zone=org"));
  await row.waitFor();
  await page.reload();
  await page.waitForSelector('html[data-ready="true"]');
  assert.equal(await page.getByTestId("filter-zone").inputValue(), "org", "filters survive a reload");
  await row.waitFor();
  await screenshot(page, "21-resources-list");

  await row.getByTestId("resource-link").click();
  await page.getByTestId("resource-page").waitFor();
  await page.getByTestId("resource-title").waitFor();
  assert.match(await page.getByTestId("resource-title").textContent(), /example\.org/);
  await screenshot(page, "22-resource-page");
  await page.getByTestId("resource-delete").click();
  await page.getByTestId("resource-delete-confirm").click();
  await page.waitForFunction(() => location.hash.startsWith("#/resources") && !location.hash.startsWith("#/resources/"));
  await settle(page);
  assertNoPageErrors(page);
});

test("a ZIP of URLs can be uploaded and its import is followed", async (t) => {
  if (!resourcesAvailable) return t.skip("GET /resources is not available on this server");
  await page.goto("/#/resources");
  await page.getByTestId("resource-upload-form").waitFor();
  const zip = makeZip([{ name: "urls.csv", data: "url\nhttps://example.com/\nhttps://example.net/a\nhttps://example.com/\nnot-a-url\n" }]);
  await page.getByTestId("resource-zip-input").setInputFiles({ name: "urls.zip", mimeType: "application/zip", buffer: zip });
  await page.getByTestId("resource-upload-button").click();
  await page.waitForFunction(
    () => {
      const s = document.querySelector('[data-testid="import-status"]');
      return s && (s.dataset.status === "succeeded" || s.dataset.status === "failed");
    },
    null,
    { timeout: 60000 }
  );
  assert.equal(await page.getByTestId("import-status").getAttribute("data-status"), "succeeded");
  await page.getByTestId("resource-row").filter({ hasText: "example.net" }).waitFor();
  await screenshot(page, "23-resources-imported");
  assertNoPageErrors(page);
});

test("the news feed loads (or says it is not available)", async () => {
  await page.goto("/#/feed");
  await page.waitForSelector('html[data-ready="true"]');
  await page.waitForSelector('#view[data-route="feed"]');
  await settle(page);
  const ok = (await page.getByTestId("event-list").count()) + (await page.getByTestId("events-empty").count()) + (await page.getByTestId("message-panel").count());
  assert.ok(ok > 0, "the feed shows events, an empty note or a not-available message");
  await screenshot(page, "24-feed");
  assertNoPageErrors(page);
});

test("the log page is for administrators only", async () => {
  assert.equal(await page.getByTestId("nav-logs").isVisible(), false, "no Logs tab for a normal user");
  await page.goto("/#/admin/logs");
  await page.waitForSelector('html[data-ready="true"]');
  await page.waitForSelector('#view[data-route="logs"]');
  const panel = page.getByTestId("message-panel");
  await panel.waitFor();
  assert.match(await panel.textContent(), /administrators only/i);
  const res = await context.request.get(`${BASE_URL}/logs?lines=5`);
  assert.ok([401, 403, 404].includes(res.status()), `GET /logs for a normal user answers ${res.status()}`);
  await screenshot(page, "25-logs-not-admin");
  assertNoPageErrors(page);
});

test("an unknown route shows a not-found page", async () => {
  await page.goto("/#/no/such/page");
  await page.waitForSelector('html[data-ready="true"]');
  const panel = page.getByTestId("message-panel");
  await panel.waitFor();
  assert.match(await panel.textContent(), /not found/i);
  assertNoPageErrors(page);
});
