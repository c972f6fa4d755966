// Shared helpers for the Pulseboard end-to-end tests.
//
// The server is NOT started here: set PULSEBOARD_URL to a running instance
// (run.sh starts the real binary and sets it).
import { chromium } from "playwright-core";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const BASE_URL = (process.env.PULSEBOARD_URL || "http://127.0.0.1:8080").replace(/\/+$/, "");
export const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
export const ARTIFACTS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "artifacts");
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
/**
 * The README's screenshots: written to docs/screenshots/ only when asked
 * (`PULSEBOARD_UPDATE_SCREENSHOTS=1 bash e2e/run.sh`), so that a test run leaves the tracked tree
 * untouched; otherwise next to the other artifacts.
 */
export const DOCS_SCREENSHOTS = process.env.PULSEBOARD_UPDATE_SCREENSHOTS === "1"
  ? path.join(ROOT, "docs", "screenshots")
  : path.join(ROOT, "e2e", "artifacts", "docs");
/** Set by run.sh: the binary it started and that server's data directory (for `pulseboard user promote`). */
export const SERVER_BIN = process.env.PULSEBOARD_E2E_BIN || "";
export const SERVER_DATA_DIR = process.env.PULSEBOARD_E2E_DATA_DIR || "";
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
export async function newPage(browser, { locale = "en-US", colorScheme = "light", viewport = { width: 1280, height: 860 }, storageState } = {}) {
  // Reduced motion: checks (axe contrast, screenshots) must never sample an element mid-animation.
  const context = await browser.newContext({ baseURL: BASE_URL, locale, colorScheme, viewport, reducedMotion: "reduce", storageState });
  context.setDefaultTimeout(15000);
  // Every page runs under the server's Content-Security-Policy: a violation is an error too.
  await context.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (e) =>
      console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || "inline code"}`));
  });
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

/**
 * A screenshot for the README: the visible 1280×800 viewport as PNG in DOCS_SCREENSHOTS/<name>.png,
 * overwritten on each run. Toasts are hidden so that the picture shows the page itself.
 */
export async function docScreenshot(page, name, { scrollTo } = {}) {
  fs.mkdirSync(DOCS_SCREENSHOTS, { recursive: true });
  const before = page.viewportSize();
  const size = { width: 1280, height: 800 };
  if (!before || before.width !== size.width || before.height !== size.height) await page.setViewportSize(size);
  const hideToasts = (hide) =>
    page.evaluate((on) => {
      for (const el of document.querySelectorAll("#toasts")) el.style.visibility = on ? "hidden" : "";
    }, hide);
  await hideToasts(true);
  try {
    // After the resize: scroll so that this element ends at the bottom of the picture.
    if (scrollTo) await scrollTo.evaluate((el) => el.scrollIntoView({ block: "end" }));
    await page.waitForTimeout(250); // let dialog animations and layout settle
    await page.screenshot({ path: path.join(DOCS_SCREENSHOTS, `${name}.png`), fullPage: false, animations: "disabled", caret: "hide" });
  } finally {
    await hideToasts(false);
    if (before && (before.width !== size.width || before.height !== size.height)) await page.setViewportSize(before);
  }
}

/** Why the admin tests cannot make an administrator here, or null when they can. */
export function adminUnavailableReason() {
  if (!SERVER_BIN || !SERVER_DATA_DIR) return "PULSEBOARD_E2E_BIN / PULSEBOARD_E2E_DATA_DIR are not set (run.sh sets them)";
  if (!fs.existsSync(SERVER_BIN)) return `the server binary ${SERVER_BIN} is missing`;
  return null;
}

/**
 * Make a registered user an administrator with `pulseboard user promote EMAIL` against the
 * server's database, then renew the browser's access token (the role is carried in the token
 * and read afresh on refresh). The caller reloads its pages.
 */
export async function promoteToAdmin(context, email) {
  // Every PULSEBOARD_* variable is read as a config key, so drop the test harness's own.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^PULSEBOARD_(URL|WEB_PORT|BIN|E2E_\w+)$/.test(k)));
  execFileSync(SERVER_BIN, ["user", "promote", email], {
    cwd: ROOT,
    env: { ...env, PULSEBOARD_DATA_DIR: SERVER_DATA_DIR },
    stdio: ["ignore", "pipe", "pipe"],
    timeout: 30000,
  });
  const res = await context.request.post(`${BASE_URL}/session/refresh`);
  if (!res.ok()) throw new Error(`POST /session/refresh after promotion answered ${res.status()}`);
  const user = await (await context.request.get(`${BASE_URL}/user`)).json();
  if (user.role !== "admin") throw new Error(`the promoted user's role is ${JSON.stringify(user.role)}`);
}

/** The SQLite database of the server under test, or null (PostgreSQL, or not started by run.sh). */
export function sqliteDatabase() {
  if (!SERVER_DATA_DIR || process.env.DATABASE_URL) return null;
  const file = path.join(SERVER_DATA_DIR, "pulseboard.db");
  return fs.existsSync(file) ? file : null;
}

/**
 * Put jobs straight into the server's SQLite job table (python3's sqlite3 module), as a
 * producer we don't have an endpoint for would. Returns their ids.
 */
export function insertJobs(dbFile, jobs) {
  const script = `
import json, sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], timeout=15)
now = int(time.time() * 1000)
ids = []
for job in json.loads(sys.argv[2]):
    cur = db.execute(
        "INSERT INTO jobs (queue, kind, payload, status, attempts, max_attempts, run_at, created_at, updated_at) "
        "VALUES (?, ?, ?, 'queued', 0, 5, ?, ?, ?)",
        (job["queue"], job["kind"], json.dumps(job["payload"]), now, now, now),
    )
    ids.append(cur.lastrowid)
db.commit()
print(json.dumps(ids))
`;
  const out = execFileSync("python3", ["-c", script, dbFile, JSON.stringify(jobs)], { encoding: "utf8", timeout: 30000 });
  return JSON.parse(out.trim());
}

export function taskItem(page, listTestId, title) {
  return page.getByTestId(listTestId).getByTestId("task-item").filter({ has: page.getByTestId("task-title").getByText(title, { exact: true }) });
}

const AXE_PATH = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "node_modules", "axe-core", "axe.min.js");

/** Run axe-core on the page; returns violations of at least `minImpact`. */
export async function axeViolations(page, { minImpact = "serious", include } = {}) {
  const loaded = await page.evaluate(() => typeof window.axe !== "undefined");
  // Evaluated through DevTools rather than added as a <script>: the app's CSP forbids inline code.
  if (!loaded) await page.evaluate(fs.readFileSync(AXE_PATH, "utf8"));
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
