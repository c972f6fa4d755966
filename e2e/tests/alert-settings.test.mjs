// A resource's alert settings on its page: each change is saved as it is made, the removal
// policy says how many more failed checks remove the site, and a refused value shows the
// server's message under its field.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { BASE_URL, launch, newPage, openApp, uniqueEmail, registerViaUi, screenshot } from "../lib/harness.mjs";

let browser;
let context;
let page;

before(async () => {
  browser = await launch();
  ({ context, page } = await newPage(browser));
  await openApp(page);
  await registerViaUi(page, uniqueEmail("alerts"));
});

after(async () => {
  if (browser) await browser.close();
});

test("alert settings are edited on the resource page and saved as they change", async () => {
  const res = await context.request.post(`${BASE_URL}/resources`, { data: { url: "https://example.net/alerts" } });
  assert.equal(res.status(), 201);
  const { uuid } = await res.json();
  const read = async () => (await context.request.get(`${BASE_URL}/resources/${uuid}`)).json();

  await openApp(page, `#/resources/${uuid}`);
  await page.getByTestId("alert-settings").waitFor();
  const status = page.getByTestId("alert-settings-status");

  await page.getByTestId("alert-alert_after").fill("3");
  await page.getByTestId("alert-alert_after").press("Tab");
  await page.waitForFunction(() => /Saved/.test(document.querySelector('[data-testid="alert-settings-status"]').textContent));
  assert.equal((await read()).alert_after, 3);

  await page.getByTestId("alert-removal").selectOption("never");
  await page.waitForFunction(() => /Never removed/.test(document.querySelector('[data-testid="removal-left"]').textContent));
  assert.equal((await read()).delete_after_failures, 0);

  await page.getByTestId("alert-removal").selectOption("after");
  await page.getByTestId("alert-delete_after_failures").fill("4");
  await page.getByTestId("alert-delete_after_failures").press("Tab");
  // The site may already have failed a check (no network here): "more" counts from there.
  await page.waitForFunction(() => /more failed check/.test(document.querySelector('[data-testid="removal-left"]').textContent));
  const after = await read();
  assert.equal(after.delete_after_failures, 4);
  assert.equal(after.removal_after_failures_left, 4 - after.unavailable_count);
  assert.match(await page.getByTestId("removal-left").textContent(), new RegExp(`after ${after.removal_after_failures_left} more failed check`));

  // Out of range: the server's message appears under the field, and nothing changes.
  await page.getByTestId("alert-alert_after").fill("0");
  await page.getByTestId("alert-alert_after").press("Tab");
  const error = page.locator('[data-error-for="alert_after"]');
  await error.waitFor({ state: "visible" });
  assert.match(await error.textContent(), /alert_after/);
  assert.equal((await read()).alert_after, 3);
  assert.equal(await status.textContent(), "");

  // Channels: with none yet, the panel says so and keeps "all channels".
  await page.getByTestId("alert-channels").getByText("No channels yet").waitFor();
  assert.equal(await page.getByTestId("alert-all-channels").isChecked(), true);
  await screenshot(page, "24-alert-settings");
  assert.deepEqual(page.errors, []);
});
