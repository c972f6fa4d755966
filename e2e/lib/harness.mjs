// Shared helpers for the Pulseboard end-to-end tests.
//
// The server is NOT started here: set PULSEBOARD_URL to a running instance
// (run.sh starts the real binary and sets it).
import { chromium } from "playwright-core";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const BASE_URL = (process.env.PULSEBOARD_URL || "http://127.0.0.1:8080").replace(/\/+$/, "");
export const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
export const ARTIFACTS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "artifacts");
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-quic",
  "--no-first-run",
  "--disable-component-update",
  "--disable-sync",
];

export async function launch() {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
}

/**
 * A fresh browser context (own cookies) and page. Uncaught page errors are
 * collected in `page.errors` so that tests can assert the app never crashed.
 */
export async function newPage(browser, { locale = "en-US", colorScheme = "light", viewport = { width: 1280, height: 860 } } = {}) {
  // Reduced motion: checks (axe contrast, screenshots) must never sample an element mid-animation.
  const context = await browser.newContext({ baseURL: BASE_URL, locale, colorScheme, viewport, reducedMotion: "reduce" });
  context.setDefaultTimeout(15000);
  const page = await context.newPage();
  page.errors = [];
  page.on("pageerror", (err) => page.errors.push(String(err && err.stack ? err.stack : err)));
  page.on("console", (msg) => {
    if (msg.type() === "error" && !/Failed to load resource|WebSocket connection to/.test(msg.text())) page.errors.push(`console: ${msg.text()}`);
  });
  return { context, page };
}

/** Open the app and wait until it has decided whether the visitor is logged in. */
export async function openApp(page, hash = "#/") {
  await page.goto(`/${hash}`);
  await page.waitForSelector('html[data-ready="true"]');
  await page.waitForSelector('body:not([data-auth="unknown"])');
}

let counter = 0;
export function uniqueEmail(prefix = "user") {
  counter += 1;
  return `${prefix}-${Date.now().toString(36)}-${process.pid}-${counter}@example.com`;
}

export const PASSWORD = "correct horse battery";

/** Register through the UI and wait for the logged-in header. */
export async function registerViaUi(page, email, password = PASSWORD) {
  await page.getByTestId("open-register").click();
  const dialog = page.getByTestId("register-dialog");
  await dialog.waitFor({ state: "visible" });
  await page.getByTestId("register-email").fill(email);
  await page.getByTestId("register-password").fill(password);
  await page.getByTestId("register-password2").fill(password);
  await page.getByTestId("register-submit").click();
  await page.waitForSelector('body[data-auth="user"]');
  await dialog.waitFor({ state: "hidden" });
}

/** Log in through the UI. */
export async function loginViaUi(page, email, password = PASSWORD) {
  await page.getByTestId("open-login").click();
  await page.getByTestId("login-dialog").waitFor({ state: "visible" });
  await page.getByTestId("login-email").fill(email);
  await page.getByTestId("login-password").fill(password);
  await page.getByTestId("login-submit").click();
  await page.waitForSelector('body[data-auth="user"]');
}

/** Add a task with the title field and wait for it to appear in the To do list. */
export async function addTask(page, title) {
  const input = page.getByTestId("new-task-input");
  await input.fill(title);
  await input.press("Enter");
  await page.getByTestId("todo-list").getByTestId("task-title").filter({ hasText: title }).first().waitFor();
}

/** Titles in a list, in display order. */
export async function titles(page, listTestId) {
  return page.getByTestId(listTestId).getByTestId("task-title").allTextContents();
}

/** Wait until no task edit is waiting or in flight. */
export async function waitForSaves(page) {
  await page.waitForSelector('html[data-pending-saves="0"]');
}

export async function screenshot(page, name) {
  await page.waitForTimeout(250); // let dialog and toast animations finish
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
}

export function taskItem(page, listTestId, title) {
  return page.getByTestId(listTestId).getByTestId("task-item").filter({ has: page.getByTestId("task-title").getByText(title, { exact: true }) });
}

const AXE_PATH = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "node_modules", "axe-core", "axe.min.js");

/** Run axe-core on the page; returns violations of at least `minImpact`. */
export async function axeViolations(page, { minImpact = "serious", include } = {}) {
  const loaded = await page.evaluate(() => typeof window.axe !== "undefined");
  if (!loaded) await page.addScriptTag({ path: AXE_PATH });
  const result = await page.evaluate(async (context) => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(context || document, { resultTypes: ["violations"] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(" ")).slice(0, 5) }));
  }, include || null);
  const order = ["minor", "moderate", "serious", "critical"];
  return result.filter((v) => order.indexOf(v.impact) >= order.indexOf(minImpact));
}

export function formatViolations(violations) {
  return violations.map((v) => `${v.impact} ${v.id}: ${v.help}\n    ${v.nodes.join("\n    ")}`).join("\n");
}
