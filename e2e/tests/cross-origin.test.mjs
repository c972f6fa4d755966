// The web app served from another origin (as nginx does in the Docker stack),
// talking to the API through config.js with CORS and cookies.
//
// Needs PULSEBOARD_WEB_PORT: a port whose origin http://127.0.0.1:<port> the
// server allows in http.cors_origins (run.sh arranges both); skipped otherwise.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { BASE_URL, launch, newPage, uniqueEmail, registerViaUi, addTask, taskItem, titles, screenshot } from "../lib/harness.mjs";
import { startStaticServer } from "../lib/static-server.mjs";

const WEB_PORT = Number(process.env.PULSEBOARD_WEB_PORT || 0);
let browser;
let web;

before(async () => {
  if (!WEB_PORT) return;
  browser = await launch();
  web = await startStaticServer({ apiBase: BASE_URL, port: WEB_PORT });
});

after(async () => {
  if (browser) await browser.close();
  if (web) await web.close();
});

test("the app works when served from another origin", { skip: WEB_PORT ? false : "PULSEBOARD_WEB_PORT is not set" }, async () => {
  const { context, page } = await newPage(browser);
  try {
    await page.goto(`${web.url}/#/`);
    await page.waitForSelector('html[data-ready="true"]');
    await page.waitForSelector('body[data-auth="guest"]');
    await registerViaUi(page, uniqueEmail("xorigin"));
    await addTask(page, "Served by another origin");
    await page.reload();
    await page.waitForSelector('body[data-auth="user"]');
    await taskItem(page, "todo-list", "Served by another origin").waitFor();
    assert.deepEqual(await titles(page, "todo-list"), ["Served by another origin"]);
    await screenshot(page, "30-cross-origin");
    await page.getByTestId("logout").click();
    await page.waitForSelector('body[data-auth="guest"]');
    await page.reload();
    await page.waitForSelector('body[data-auth="guest"]');
    assert.deepEqual(page.errors, []);
  } finally {
    await context.close();
  }
});
