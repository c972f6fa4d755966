// Admin pages: the live log and the job queues. An administrator is made the
// way an operator would: register, then `pulseboard user promote EMAIL`
// (run.sh tells the tests which binary and data directory the server uses).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  BASE_URL,
  PASSWORD,
  launch,
  newPage,
  openApp,
  uniqueEmail,
  registerViaUi,
  screenshot,
  docScreenshot,
  adminUnavailableReason,
  promoteToAdmin,
  sqliteDatabase,
  insertJobs,
  axeViolations,
  formatViolations,
} from "../lib/harness.mjs";

const skipReason = adminUnavailableReason();
let browser;
let context;
let page;

before(async () => {
  if (skipReason) return;
  browser = await launch();
  ({ context, page } = await newPage(browser));
  await openApp(page);
  const email = uniqueEmail("admin");
  await registerViaUi(page, email);
  assert.equal(await page.getByTestId("nav-logs").isVisible(), false, "no admin tabs before the promotion");
  await promoteToAdmin(context, email);
  await page.reload();
  await openApp(page);
});

after(async () => {
  if (browser) await browser.close();
});

function assertNoPageErrors(p) {
  assert.deepEqual(p.errors, [], `the page reported errors:\n${p.errors.join("\n")}`);
}

async function adminQueues() {
  const res = await context.request.get(`${BASE_URL}/admin/queues`);
  assert.equal(res.status(), 200, "GET /admin/queues for an administrator");
  return res.json();
}

test("the log page shows, live, a line that the test causes", { skip: skipReason || false }, async () => {
  await page.getByTestId("nav-jobs").waitFor({ state: "visible" });
  await page.getByTestId("nav-logs").click();
  await page.getByTestId("logs-page").waitFor();
  await page.waitForSelector('[data-testid="log-connection"][data-state="live"]');

  // Somebody else registers (another browser, through the API): the server logs
  // "user registered user_id=<id>" at INFO, and the open page receives it over the WebSocket.
  const other = await browser.newContext({ baseURL: BASE_URL });
  let userId;
  try {
    const res = await other.request.post(`${BASE_URL}/user`, { data: { email: uniqueEmail("logged"), password: PASSWORD } });
    assert.ok(res.ok(), `POST /user answered ${res.status()}`);
    const body = await res.json();
    userId = body.user ? body.user.id : body.id;
    assert.ok(userId !== undefined, "the registration answer names the user");
  } finally {
    await other.close();
  }
  const line = page.getByTestId("log-line").filter({ hasText: new RegExp(`user registered.*\\buser_id=${userId}\\b`) });
  await line.first().waitFor({ timeout: 10000 });
  assert.equal(await line.first().getAttribute("data-level"), "INFO");

  // The level filter hides it, and brings it back.
  await page.getByTestId("log-level").selectOption("WARN");
  assert.equal(await line.count(), 0, "an INFO line is hidden at WARN and above");
  await page.getByTestId("log-level").selectOption("TRACE");
  await line.first().waitFor();

  const v = await axeViolations(page);
  assert.deepEqual(v, [], `log page:\n${formatViolations(v)}`);
  await docScreenshot(page, "admin-logs");
  assertNoPageErrors(page);
});

test("the job queue page shows the counts per queue and state", { skip: skipReason || false }, async () => {
  await page.getByTestId("nav-jobs").click();
  await page.waitForSelector('#view[data-route="jobs"]');
  await page.getByTestId("jobs-page").waitFor();
  const table = page.getByTestId("counts-table");
  await table.waitFor();
  const headers = (await table.locator("thead th").allTextContents()).map((s) => s.trim());
  assert.deepEqual(headers.slice(0, 5), ["Queue", "Queued", "Running", "Done", "Failed"]);

  // Every registration queues a welcome email, so the email queue exists; its row shows the
  // server's numbers (jobs move on while we look, so compare the total, which only grows).
  const row = page.locator('[data-testid="queue-row"][data-queue="email"]');
  await row.waitFor();
  const api = await adminQueues();
  assert.ok(api.queues && api.queues.email, "GET /admin/queues lists the email queue");
  const apiTotal = Object.values(api.queues.email).reduce((a, b) => a + (typeof b === "number" ? b : 0), 0);
  assert.ok(apiTotal >= 1, "at least one welcome email was queued");
  const shown = await row.locator("td").allTextContents();
  const shownTotal = shown.map((s) => Number.parseInt(s.trim(), 10)).filter(Number.isFinite).reduce((a, b) => a + b, 0);
  assert.ok(shownTotal >= 1 && shownTotal <= apiTotal + 5, `the email row adds up (${shown.join(" / ")}; API total ${apiTotal})`);
  assert.match(await page.getByTestId("jobs-updated").textContent(), /Updated/);
  assertNoPageErrors(page);
});

test("a dead job shows its error and can be retried and discarded", { skip: skipReason || false }, async (t) => {
  const db = sqliteDatabase();
  if (!db) {
    // Nothing reachable through the API dies within seconds (failures are retried with back-off).
    t.skip("needs the server's SQLite database to queue a job that dies at once");
    return;
  }
  await page.goto("/#/admin/jobs");
  await page.getByTestId("counts-table").waitFor();

  // Two jobs of a kind no worker knows: the worker dead-letters them at once ("no handler for
  // job kind"), the same way as any job whose error cannot be helped by retrying.
  const kind = `e2e_unknown_${Date.now().toString(36)}`;
  const [retryId, discardId] = insertJobs(db, [
    { queue: "maintenance", kind, payload: { note: "queued by the e2e test to retry" } },
    { queue: "maintenance", kind, payload: { note: "queued by the e2e test to discard" } },
  ]);
  const rowOf = (id) => page.locator(`[data-testid="dead-row"][data-id="${id}"]`);

  // No click: the page refreshes itself every few seconds.
  await rowOf(retryId).waitFor({ timeout: 20000 });
  await rowOf(discardId).waitFor({ timeout: 10000 });
  assert.equal((await rowOf(retryId).getByTestId("dead-kind").textContent()).trim(), kind);
  assert.match(await rowOf(retryId).getByTestId("dead-error").textContent(), /no handler for job kind/);
  assert.match((await rowOf(retryId).getByTestId("dead-attempts").textContent()).trim(), /^1\b/);
  const deadCell = page.locator('[data-testid="queue-row"][data-queue="maintenance"] td[data-state="dead"]');
  await page.waitForFunction(() => {
    const cell = document.querySelector('[data-testid="queue-row"][data-queue="maintenance"] td[data-state="dead"]');
    return cell && Number.parseInt(cell.textContent, 10) >= 2;
  });
  assert.ok(Number.parseInt(await deadCell.textContent(), 10) >= 2);
  const v = await axeViolations(page);
  assert.deepEqual(v, [], `job queue page:\n${formatViolations(v)}`);
  await docScreenshot(page, "admin-jobs");
  await screenshot(page, "40-admin-jobs");

  // Retry: the server puts it back in its queue; the worker runs it again and, the kind still
  // being unknown, it dies again — a later failure time proves it ran.
  const before = (await adminQueues()).dead.find((j) => j.id === retryId);
  assert.ok(before, "the API lists the dead job");
  const retried = page.waitForResponse((r) => r.url().endsWith(`/admin/jobs/${retryId}/retry`) && r.request().method() === "POST");
  await rowOf(retryId).getByTestId("dead-retry").click();
  assert.equal((await retried).status(), 202);
  await page.getByTestId("toast").filter({ hasText: `Job #${retryId} is back in its queue` }).waitFor();
  let again;
  for (let i = 0; i < 80 && !again; i++) {
    again = (await adminQueues()).dead.find((j) => j.id === retryId && j.updated_at !== before.updated_at);
    if (!again) await page.waitForTimeout(250);
  }
  assert.ok(again, "the retried job ran again and was dead-lettered again");

  // Discard asks first; then the job is gone for good.
  await rowOf(discardId).getByTestId("dead-discard").click();
  const confirm = rowOf(discardId).getByTestId("dead-discard-confirm");
  await confirm.waitFor({ state: "visible" });
  const discarded = page.waitForResponse((r) => r.url().endsWith(`/admin/jobs/${discardId}`) && r.request().method() === "DELETE");
  await confirm.click();
  assert.equal((await discarded).status(), 204);
  await rowOf(discardId).waitFor({ state: "detached" });
  assert.equal((await adminQueues()).dead.some((j) => j.id === discardId), false, "the discarded job is gone");

  // Clean up the other one through the API (204 only when it is dead again).
  const del = await context.request.delete(`${BASE_URL}/admin/jobs/${retryId}`);
  assert.equal(del.status(), 204);
  await page.getByTestId("jobs-refresh").click();
  await rowOf(retryId).waitFor({ state: "detached" });
  assertNoPageErrors(page);
});

test("the job queue page works at phone width in dark mode", { skip: skipReason || false }, async () => {
  // With a dead job in the list, so that its row's layout is checked too.
  const db = sqliteDatabase();
  let deadId = null;
  if (db) {
    [deadId] = insertJobs(db, [{ queue: "maintenance", kind: "e2e_unknown_phone", payload: { note: "a job with a rather long payload to see how it wraps on a narrow screen" } }]);
    for (let i = 0; i < 80; i++) {
      if ((await adminQueues()).dead.some((j) => j.id === deadId)) break;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  const { context: phoneCtx, page: phone } = await newPage(browser, { viewport: { width: 390, height: 844 }, colorScheme: "dark", storageState: await context.storageState() });
  try {
    await openApp(phone, "#/admin/jobs");
    await phone.getByTestId("counts-table").waitFor();
    if (deadId !== null) await phone.locator(`[data-testid="dead-row"][data-id="${deadId}"]`).waitFor();
    const width = await phone.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= 390, `no horizontal scrolling (scrollWidth ${width})`);
    const v = await axeViolations(phone);
    assert.deepEqual(v, [], `job queue page, phone, dark:\n${formatViolations(v)}`);
    await screenshot(phone, "41-admin-jobs-phone-dark");
    assertNoPageErrors(phone);
  } finally {
    await phoneCtx.close();
    if (deadId !== null) await context.request.delete(`${BASE_URL}/admin/jobs/${deadId}`);
  }
});
