// Watch: resources, the news feed and the admin log page. The pages must never
// crash; where the server does not offer an endpoint (404) they say so politely.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { BASE_URL, launch, newPage, openApp, uniqueEmail, registerViaUi, screenshot, docScreenshot } from "../lib/harness.mjs";
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
  // Four data rows: two new URLs, one duplicate, one that is not a URL.
  const status = await page.getByTestId("import-status").innerText();
  assert.match(status, /\b4 of 4 processed\b/);
  assert.match(status, /^2 added$/m);
  assert.match(status, /^1 duplicate$/m);
  assert.match(status, /^1 error$/m);
  assert.equal(await page.getByTestId("upload-progress").getAttribute("value"), "100");
  await page.getByTestId("resource-row").filter({ hasText: "example.net" }).waitFor();
  await screenshot(page, "23-resources-imported");
  await docScreenshot(page, "resources");
  assertNoPageErrors(page);
});

/** A small PNG that looks like a captured web page. */
async function fakeCapture() {
  const { context: c, page: p } = await newPage(browser, { viewport: { width: 800, height: 500 } });
  try {
    await p.setContent(
      `<body style="margin:0;font-family:sans-serif;background:#f0f0f2"><div style="width:560px;margin:80px auto;padding:2em;background:#fff;border-radius:.5em;box-shadow:2px 3px 7px 2px rgba(0,0,0,.02)"><h1>Example Domain</h1><p>This domain is for use in illustrative examples in documents.</p><p><a href="#" style="color:#38488f">More information...</a></p></div></body>`
    );
    return await p.screenshot({ type: "png" });
  } finally {
    await c.close();
  }
}

test("Capture now shows the server's reason, or the new screenshot once it is taken", async (t) => {
  if (!resourcesAvailable) return t.skip("GET /resources is not available on this server");
  await page.goto("/#/resources?domain_zone=net");
  await page.waitForSelector('html[data-ready="true"]');
  await page.getByTestId("resource-row").filter({ hasText: "example.net" }).getByTestId("resource-link").click();
  await page.getByTestId("resource-page").waitFor();
  const uuid = decodeURIComponent(await page.evaluate(() => location.hash.split("/").pop()));
  const captureUrl = /\/resources\/[^/]+\/screenshot\/capture$/;
  const status = page.getByTestId("capture-status");

  // The endpoint is mocked (the real one needs Chromium and network access on the server):
  // 503 — the page shows the server's own message.
  const unavailable = "Screenshot capture is not available: Chromium is not installed on this server (install the chromium package or set screenshots.chromium_path)";
  await page.route(captureUrl, (route) => route.fulfill({ status: 503, contentType: "application/json", body: JSON.stringify({ error: "service_unavailable", message: unavailable }) }));
  try {
    await page.getByTestId("capture-button").click();
    await page.waitForSelector('[data-testid="capture-status"][data-kind="error"]');
    assert.equal((await status.textContent()).trim(), unavailable);
    assert.equal(await page.getByTestId("capture-button").isEnabled(), true, "the button can be pressed again");
  } finally {
    await page.unroute(captureUrl);
  }

  // 202 with a job id — the page watches GET /resources/{uuid} until the screenshot changes.
  // Here the "worker" is this test, storing an image through the real upload endpoint.
  await page.route(captureUrl, (route) => route.fulfill({ status: 202, contentType: "application/json", body: JSON.stringify({ job_id: 4242 }) }));
  try {
    await page.getByTestId("capture-button").click();
    await page.waitForFunction(() => /4242/.test(document.querySelector('[data-testid="capture-status"]').textContent));
    assert.equal(await page.getByTestId("screenshot").locator("img").count(), 0, "no screenshot yet");
    const polled = page.waitForRequest((r) => r.method() === "GET" && new URL(r.url()).pathname.endsWith(`/resources/${uuid}`));
    const up = await context.request.post(`${BASE_URL}/resources/${encodeURIComponent(uuid)}`, { multipart: { file: { name: "capture.png", mimeType: "image/png", buffer: await fakeCapture() } } });
    assert.equal(up.status(), 201, "the upload endpoint stores the image");
    await polled;
    await page.waitForSelector('[data-testid="capture-status"][data-kind="success"]', { timeout: 15000 });
    const img = page.getByTestId("screenshot").locator("img");
    await img.waitFor();
    await page.waitForFunction(() => {
      const el = document.querySelector('[data-testid="screenshot"] img');
      return el && el.complete && el.naturalWidth > 0;
    });
    assert.match(await status.textContent(), /captured/i);
  } finally {
    await page.unroute(captureUrl);
  }
  // Show the screenshot panel with its buttons (the facts at the top scroll partly away).
  await docScreenshot(page, "resource", { scrollTo: status });
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
  await docScreenshot(page, "feed");
  assertNoPageErrors(page);
});

test("the log and job queue pages are for administrators only", async () => {
  assert.equal(await page.getByTestId("nav-logs").isVisible(), false, "no Logs tab for a normal user");
  assert.equal(await page.getByTestId("nav-jobs").isVisible(), false, "no Jobs tab for a normal user");
  await page.goto("/#/admin/logs");
  await page.waitForSelector('html[data-ready="true"]');
  await page.waitForSelector('#view[data-route="logs"]');
  const panel = page.getByTestId("message-panel");
  await panel.waitFor();
  assert.match(await panel.textContent(), /administrators only/i);
  const res = await context.request.get(`${BASE_URL}/logs?lines=5`);
  assert.ok([401, 403, 404].includes(res.status()), `GET /logs for a normal user answers ${res.status()}`);
  await screenshot(page, "25-logs-not-admin");

  await page.goto("/#/admin/jobs");
  await page.waitForSelector('#view[data-route="jobs"]');
  await panel.waitFor();
  assert.match(await panel.textContent(), /administrators only/i);
  assert.equal(await page.getByTestId("jobs-page").count(), 0);
  const queues = await context.request.get(`${BASE_URL}/admin/queues`);
  assert.equal(queues.status(), 403, "GET /admin/queues for a normal user");
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
