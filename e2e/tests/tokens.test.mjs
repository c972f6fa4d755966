// API tokens page: create a token (its secret shown once, with a copy button),
// use it from a script, see it listed without the secret, revoke it.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { BASE_URL, launch, newPage, openApp, uniqueEmail, registerViaUi, screenshot, axeViolations, formatViolations } from "../lib/harness.mjs";

let browser;
let page;

before(async () => {
  browser = await launch();
  ({ page } = await newPage(browser));
  await openApp(page);
  await registerViaUi(page, uniqueEmail("tokens"));
});

after(async () => {
  if (browser) await browser.close();
});

/** A request as a script makes it: the token only, no cookies. */
function withToken(token, method, path, body) {
  return fetch(`${BASE_URL}${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
}

test("a token is created with its scopes, shown once, used, listed and revoked", async () => {
  await page.getByTestId("nav-tokens").click();
  await page.getByTestId("tokens-page").waitFor();
  await page.getByTestId("tokens-empty").waitFor();

  // Without a name the form says so and sends nothing.
  await page.getByTestId("token-create").click();
  await page.locator("#token-name-error").waitFor({ state: "visible" });

  await page.getByTestId("token-name").fill("e2e script");
  await page.getByTestId("token-scope-tasks:write").check();
  await page.getByTestId("token-expiry").selectOption("30");
  await page.getByTestId("token-create").click();
  const secretPanel = page.getByTestId("token-secret");
  await secretPanel.waitFor({ state: "visible" });
  const secret = (await page.getByTestId("token-value").textContent()).trim();
  assert.match(secret, /^pb_[A-Za-z0-9_-]{43}$/);
  await page.getByTestId("token-row").first().waitFor();
  const row = page.getByTestId("token-row");
  assert.equal(await row.count(), 1);
  const rowText = await row.textContent();
  assert.ok(rowText.includes("e2e script") && rowText.includes("tasks:write") && rowText.includes("Never used"), rowText);
  assert.ok(!rowText.includes(secret), "the list never shows the secret");

  const v = await axeViolations(page);
  assert.deepEqual(v, [], `tokens page:\n${formatViolations(v)}`);
  await screenshot(page, "tokens-created");

  const created = await withToken(secret, "POST", "/tasks", { title: "made by a token" });
  assert.equal(created.status, 201);
  const outOfScope = await withToken(secret, "POST", "/resources", { url: "https://example.com/" });
  assert.equal(outOfScope.status, 403);

  // Once dismissed (or after a reload) the secret is gone for good; the use is recorded.
  await page.getByTestId("token-secret-done").click();
  await secretPanel.waitFor({ state: "hidden" });
  await page.reload();
  await openApp(page, "#/tokens");
  await page.getByTestId("token-row").first().waitFor();
  assert.ok(!(await page.content()).includes(secret));
  assert.ok(!(await page.getByTestId("token-row").textContent()).includes("Never used"), "last use is shown");

  await page.getByTestId("token-revoke").click();
  await page.getByTestId("token-revoke-confirm").click();
  await page.getByTestId("tokens-empty").waitFor();
  const revoked = await withToken(secret, "GET", "/tasks");
  assert.equal(revoked.status, 401);
  assert.deepEqual(page.errors, [], `the page reported errors:\n${page.errors.join("\n")}`);
});
