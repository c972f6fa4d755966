// Notification channels page: field errors from the form and from the server, add a channel,
// send it a test and see its last delivery, edit it without retyping its secret, delete it.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { launch, newPage, openApp, uniqueEmail, registerViaUi, screenshot, axeViolations, formatViolations } from "../lib/harness.mjs";

let browser;
let page;

before(async () => {
  browser = await launch();
  ({ page } = await newPage(browser));
  await openApp(page);
  await registerViaUi(page, uniqueEmail("channels"));
});

after(async () => {
  if (browser) await browser.close();
});

test("a channel is added, tested, edited and deleted", async () => {
  await page.getByTestId("nav-channels").click();
  await page.getByTestId("channels-page").waitFor();
  await page.getByTestId("channels-empty").waitFor();

  // Missing fields are named before anything is sent.
  await page.getByTestId("channel-save").click();
  await page.locator("#channel-name-error").waitFor({ state: "visible" });
  await page.locator("#channel-config-url-error").waitFor({ state: "visible" });

  // The server's refusal lands on its field: a private address (the guard is on by default).
  await page.getByTestId("channel-name").fill("Ops hook");
  await page.getByTestId("channel-config-url").fill("http://127.0.0.1:9/hook");
  await page.getByTestId("channel-config-secret").fill("e2e-secret-value");
  await page.getByTestId("channel-save").click();
  await page.locator("#channel-config-url-error").waitFor({ state: "visible" });
  assert.match(await page.locator("#channel-config-url-error").textContent(), /private/);

  // A name that does not resolve is accepted; its deliveries fail and say why.
  await page.getByTestId("channel-config-url").fill("https://hooks.invalid/e2e");
  await page.getByTestId("channel-save").click();
  const row = page.getByTestId("channel-row");
  await row.first().waitFor();
  assert.equal(await row.count(), 1);
  const text = await row.textContent();
  assert.ok(text.includes("Ops hook") && text.includes("Webhook"), text);
  assert.ok(!(await page.content()).includes("e2e-secret-value"), "the secret is never shown");

  await page.getByTestId("channel-test").click();
  await page.getByTestId("channel-last-delivery").waitFor({ timeout: 15000 });
  assert.notEqual(await page.getByTestId("channel-last-delivery").getAttribute("data-status"), "ok");

  const v = await axeViolations(page);
  assert.deepEqual(v, [], `channels page:\n${formatViolations(v)}`);
  await screenshot(page, "channels");

  // Editing keeps the secret unless a new one is typed.
  await page.getByTestId("channel-edit").click();
  assert.equal(await page.getByTestId("channel-config-secret").inputValue(), "");
  await page.getByTestId("channel-name").fill("Ops hook 2");
  await page.getByTestId("channel-save").click();
  await page.getByText("Ops hook 2").first().waitFor();
  const me = await page.evaluate(async () => (await fetch("/channels", { credentials: "include" })).json());
  assert.equal(me[0].config.secret, "set");

  await page.getByTestId("channel-delete").click();
  await page.getByTestId("channel-delete-confirm").click();
  await page.getByTestId("channels-empty").waitFor();
});
