// Board: accounts, tasks, autosave, ordering, isolation between users.
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
  loginViaUi,
  addTask,
  titles,
  waitForSaves,
  screenshot,
  docScreenshot,
  taskItem,
} from "../lib/harness.mjs";

let browser;
/** The first user's browser context, page and email; shared by the tests below, in order. */
let ctxA;
let pageA;
const emailA = uniqueEmail("alice");
let taskIdA = null;

before(async () => {
  browser = await launch();
  ({ context: ctxA, page: pageA } = await newPage(browser));
});

after(async () => {
  if (browser) await browser.close();
});

function assertNoPageErrors(page) {
  assert.deepEqual(page.errors, [], `the page reported errors:\n${page.errors.join("\n")}`);
}

test("a guest sees Register and Log in buttons and a landing page", async () => {
  await openApp(pageA);
  assert.equal(await pageA.locator("body").getAttribute("data-auth"), "guest");
  await pageA.getByTestId("open-register").waitFor({ state: "visible" });
  await pageA.getByTestId("open-login").waitFor({ state: "visible" });
  assert.equal(await pageA.getByTestId("user-actions").isVisible(), false);
  await pageA.getByTestId("guest-landing").waitFor();
  await screenshot(pageA, "01-guest");
  assertNoPageErrors(pageA);
});

test("the login dialog is modal, takes focus and closes with Escape", async () => {
  await pageA.getByTestId("open-login").click();
  const dialog = pageA.getByTestId("login-dialog");
  await dialog.waitFor({ state: "visible" });
  const focusedInside = await pageA.evaluate(() => !!document.activeElement && !!document.activeElement.closest("#login-dialog"));
  assert.ok(focusedInside, "focus moved into the dialog");
  assert.equal(await pageA.evaluate(() => document.activeElement.id), "login-email");
  await screenshot(pageA, "02-login-dialog");
  await pageA.keyboard.press("Escape");
  await dialog.waitFor({ state: "hidden" });
});

test("registering with mismatched passwords shows the error in the form and calls no server", async () => {
  const calls = [];
  const listener = (req) => {
    if (req.method() === "POST" && new URL(req.url()).pathname.replace(/\/+$/, "").endsWith("/user")) calls.push(req.url());
  };
  pageA.on("request", listener);
  await pageA.getByTestId("open-register").click();
  await pageA.getByTestId("register-dialog").waitFor({ state: "visible" });
  await pageA.getByTestId("register-email").fill(emailA);
  await pageA.getByTestId("register-password").fill(PASSWORD);
  await pageA.getByTestId("register-password2").fill(`${PASSWORD}-typo`);
  await pageA.getByTestId("register-submit").click();

  const error = pageA.getByTestId("register-password2-error");
  await error.waitFor({ state: "visible" });
  assert.match(await error.textContent(), /match/i);
  assert.equal(await pageA.getByTestId("register-password2").getAttribute("aria-invalid"), "true");
  assert.ok(await pageA.getByTestId("register-dialog").isVisible(), "the dialog stays open");
  await screenshot(pageA, "03-register-mismatch");
  await pageA.waitForTimeout(300);
  pageA.off("request", listener);
  assert.deepEqual(calls, [], "no POST /user was sent");
  assert.equal(await pageA.locator("body").getAttribute("data-auth"), "guest");

  // Fix the repeat password and submit: the user is registered and logged in at once.
  await pageA.getByTestId("register-password2").fill(PASSWORD);
  assert.equal(await error.isVisible(), false, "the error clears when the field is edited");
  await pageA.getByTestId("register-submit").click();
  await pageA.waitForSelector('body[data-auth="user"]');
  await pageA.getByTestId("register-dialog").waitFor({ state: "hidden" });
  assert.equal((await pageA.getByTestId("user-email").textContent()).trim(), emailA);
  assertNoPageErrors(pageA);
});

test("a new user sees an empty board that explains what to do", async () => {
  const empty = pageA.getByTestId("empty-state");
  await empty.waitFor({ state: "visible" });
  assert.match(await empty.textContent(), /first task/i);
  assert.equal(await pageA.getByTestId("task-columns").isVisible(), false);
  await screenshot(pageA, "04-empty-board");
});

test("adding tasks: Enter and the Add button both add, empty titles are refused", async () => {
  await addTask(pageA, "Buy milk"); // Enter
  await pageA.getByTestId("new-task-input").fill("Write report");
  await pageA.getByTestId("add-task-button").click();
  await taskItem(pageA, "todo-list", "Write report").waitFor();
  await addTask(pageA, "Call mom");
  assert.deepEqual(await titles(pageA, "todo-list"), ["Buy milk", "Write report", "Call mom"]);
  assert.equal(await pageA.getByTestId("new-task-input").inputValue(), "", "the input is cleared");
  assert.equal((await pageA.getByTestId("todo-count").textContent()).trim(), "3");
  assert.equal(await pageA.getByTestId("empty-state").isVisible(), false);

  // A blank title is refused in the page.
  await pageA.getByTestId("new-task-input").fill("   ");
  await pageA.getByTestId("new-task-input").press("Enter");
  await pageA.getByTestId("new-task-error").waitFor({ state: "visible" });
  await pageA.getByTestId("new-task-input").fill("");
  assert.equal((await titles(pageA, "todo-list")).length, 3);

  // The board survives a reload.
  await pageA.reload();
  await openApp(pageA);
  await taskItem(pageA, "todo-list", "Call mom").waitFor();
  assert.deepEqual(await titles(pageA, "todo-list"), ["Buy milk", "Write report", "Call mom"]);
  await screenshot(pageA, "05-board");
  assertNoPageErrors(pageA);
});

test("editing a task in the dialog saves by itself and persists after reload", async () => {
  await taskItem(pageA, "todo-list", "Write report").getByTestId("task-open").click();
  const dialog = pageA.getByTestId("task-dialog");
  await dialog.waitFor({ state: "visible" });
  assert.equal(await pageA.evaluate(() => document.activeElement.id), "task-title", "focus is in the title field");
  assert.equal(await dialog.getByRole("button", { name: /^save$/i }).count(), 0, "there is no Save button");

  // Title: debounced autosave with a visible state.
  await pageA.getByTestId("task-title-input").fill("Write the quarterly report");
  const state = pageA.getByTestId("save-state");
  await pageA.waitForSelector('[data-testid="save-state"][data-state="saved"]');
  assert.match(await state.textContent(), /saved/i);
  // The list behind the dialog already shows the new title.
  await taskItem(pageA, "todo-list", "Write the quarterly report").waitFor();

  // Description: close the dialog right after typing, before the debounced save
  // fires (made long here so that it surely hasn't): the pending edit must be
  // flushed on close, not lost.
  await pageA.evaluate(() => {
    window.PULSEBOARD_SAVE_DEBOUNCE_MS = 60000;
  });
  await pageA.getByTestId("task-description-input").fill("Numbers from finance\nCharts from marketing");
  assert.equal(await state.getAttribute("data-state"), "saving");
  assert.equal(await pageA.evaluate(() => document.documentElement.dataset.pendingSaves), "1");
  await screenshot(pageA, "06-task-dialog");
  await pageA.keyboard.press("Escape");
  await dialog.waitFor({ state: "hidden" });
  await waitForSaves(pageA);
  await pageA.evaluate(() => {
    delete window.PULSEBOARD_SAVE_DEBOUNCE_MS;
  });

  await pageA.reload();
  await openApp(pageA);
  const item = taskItem(pageA, "todo-list", "Write the quarterly report");
  await item.waitFor();
  taskIdA = await item.getAttribute("data-id");
  assert.deepEqual(await titles(pageA, "todo-list"), ["Buy milk", "Write the quarterly report", "Call mom"]);
  await item.getByTestId("task-open").click();
  await dialog.waitFor({ state: "visible" });
  assert.equal(await pageA.getByTestId("task-title-input").inputValue(), "Write the quarterly report");
  assert.equal(await pageA.getByTestId("task-description-input").inputValue(), "Numbers from finance\nCharts from marketing");
  await docScreenshot(pageA, "board-task");

  // An empty title is not sent and is reported in the dialog.
  await pageA.getByTestId("task-title-input").fill("");
  await pageA.getByTestId("task-title-error").waitFor({ state: "visible" });
  assert.equal(await state.getAttribute("data-state"), "invalid");
  await pageA.getByTestId("task-close").click();
  await dialog.waitFor({ state: "hidden" });
  await waitForSaves(pageA);
  await taskItem(pageA, "todo-list", "Write the quarterly report").waitFor();
  assertNoPageErrors(pageA);
});

test("a failed save is shown in the dialog and can be retried", async () => {
  const failPatch = (route) => (route.request().method() === "PATCH" ? route.fulfill({ status: 503, contentType: "application/json", body: JSON.stringify({ message: "Service unavailable", error: "unavailable" }) }) : route.continue());
  await pageA.route(/\/tasks\/[^/?]+$/, failPatch);
  try {
    await taskItem(pageA, "todo-list", "Call mom").getByTestId("task-open").click();
    await pageA.getByTestId("task-dialog").waitFor({ state: "visible" });
    await pageA.getByTestId("task-title-input").fill("Call mom tonight");
    await pageA.waitForSelector('[data-testid="save-state"][data-state="error"]');
    assert.match(await pageA.getByTestId("save-state").textContent(), /failed to save/i);
    await screenshot(pageA, "06b-save-failed");
  } finally {
    await pageA.unroute(/\/tasks\/[^/?]+$/, failPatch);
  }
  await pageA.getByTestId("save-retry").click();
  await pageA.waitForSelector('[data-testid="save-state"][data-state="saved"]');
  await pageA.keyboard.press("Escape");
  await waitForSaves(pageA);
  await pageA.reload();
  await openApp(pageA);
  await taskItem(pageA, "todo-list", "Call mom tonight").waitFor();

  // Put the title back for the tests below.
  await taskItem(pageA, "todo-list", "Call mom tonight").getByTestId("task-open").click();
  await pageA.getByTestId("task-title-input").fill("Call mom");
  await pageA.keyboard.press("Escape");
  await waitForSaves(pageA);
  await taskItem(pageA, "todo-list", "Call mom").waitFor();
  assertNoPageErrors(pageA);
});

test("ticking Done in the dialog moves the task to the done list", async () => {
  await taskItem(pageA, "todo-list", "Buy milk").getByTestId("task-open").click();
  const dialog = pageA.getByTestId("task-dialog");
  await dialog.waitFor({ state: "visible" });
  await pageA.getByTestId("task-done-checkbox").check();
  await pageA.waitForSelector('[data-testid="save-state"][data-state="saved"]');
  await pageA.getByTestId("task-close").click();
  await dialog.waitFor({ state: "hidden" });
  await taskItem(pageA, "done-list", "Buy milk").waitFor();
  assert.deepEqual(await titles(pageA, "todo-list"), ["Write the quarterly report", "Call mom"]);
  assert.deepEqual(await titles(pageA, "done-list"), ["Buy milk"]);

  await pageA.reload();
  await openApp(pageA);
  await taskItem(pageA, "done-list", "Buy milk").waitFor();
  assert.deepEqual(await titles(pageA, "done-list"), ["Buy milk"]);
  await screenshot(pageA, "07-board-with-done");
  await docScreenshot(pageA, "board");

  // The checkbox in the list moves it back, and forth again.
  // (click, not uncheck(): the item moves to the other list at once)
  await taskItem(pageA, "done-list", "Buy milk").getByTestId("task-toggle").click();
  await taskItem(pageA, "todo-list", "Buy milk").waitFor();
  await waitForSaves(pageA);
  await taskItem(pageA, "todo-list", "Buy milk").getByTestId("task-toggle").click();
  await taskItem(pageA, "done-list", "Buy milk").waitFor();
  await waitForSaves(pageA);
  assertNoPageErrors(pageA);
});

test("the undone list can be reordered by drag and drop and by keyboard", async () => {
  await addTask(pageA, "Pay rent");
  assert.deepEqual(await titles(pageA, "todo-list"), ["Write the quarterly report", "Call mom", "Pay rent"]);

  // Drag "Pay rent" above the first task.
  const handle = taskItem(pageA, "todo-list", "Pay rent").getByTestId("task-drag-handle");
  const first = taskItem(pageA, "todo-list", "Write the quarterly report");
  const hb = await handle.boundingBox();
  const fb = await first.boundingBox();
  await pageA.mouse.move(hb.x + hb.width / 2, hb.y + hb.height / 2);
  await pageA.mouse.down();
  await pageA.mouse.move(hb.x + hb.width / 2, fb.y + 4, { steps: 12 });
  await pageA.mouse.up();
  assert.deepEqual(await titles(pageA, "todo-list"), ["Pay rent", "Write the quarterly report", "Call mom"]);
  await waitForSaves(pageA);

  // Keyboard: focus "Call mom"'s handle and press ArrowUp.
  await taskItem(pageA, "todo-list", "Call mom").getByTestId("task-drag-handle").focus();
  await pageA.keyboard.press("ArrowUp");
  assert.deepEqual(await titles(pageA, "todo-list"), ["Pay rent", "Call mom", "Write the quarterly report"]);
  await waitForSaves(pageA);

  await pageA.reload();
  await openApp(pageA);
  await taskItem(pageA, "todo-list", "Pay rent").waitFor();
  assert.deepEqual(await titles(pageA, "todo-list"), ["Pay rent", "Call mom", "Write the quarterly report"], "the order persists");

  // Two quick moves down take the first task to the bottom.
  await taskItem(pageA, "todo-list", "Pay rent").getByTestId("task-drag-handle").focus();
  await pageA.keyboard.press("ArrowDown");
  await pageA.keyboard.press("ArrowDown");
  assert.deepEqual(await titles(pageA, "todo-list"), ["Call mom", "Write the quarterly report", "Pay rent"]);
  await waitForSaves(pageA);
  await pageA.reload();
  await openApp(pageA);
  await taskItem(pageA, "todo-list", "Pay rent").waitFor();
  assert.deepEqual(await titles(pageA, "todo-list"), ["Call mom", "Write the quarterly report", "Pay rent"], "the order persists");
  assertNoPageErrors(pageA);
});

test("a task can be deleted from its dialog", async () => {
  await taskItem(pageA, "todo-list", "Pay rent").getByTestId("task-open").click();
  await pageA.getByTestId("task-dialog").waitFor({ state: "visible" });
  await pageA.getByTestId("task-delete").click();
  await pageA.getByTestId("task-delete-confirm").click();
  await pageA.getByTestId("task-dialog").waitFor({ state: "hidden" });
  await taskItem(pageA, "todo-list", "Pay rent").waitFor({ state: "detached" });
  assert.deepEqual(await titles(pageA, "todo-list"), ["Call mom", "Write the quarterly report"]);

  await pageA.reload();
  await openApp(pageA);
  await taskItem(pageA, "todo-list", "Call mom").waitFor();
  assert.deepEqual(await titles(pageA, "todo-list"), ["Call mom", "Write the quarterly report"]);
  assertNoPageErrors(pageA);
});

test("an expired access token is renewed with the refresh cookie", async (t) => {
  const cookies = await ctxA.cookies();
  const refreshCookie = cookies.find((c) => /refresh/i.test(c.name) || /refresh/i.test(c.path));
  if (!refreshCookie) {
    t.skip(`no refresh cookie recognisable by name or path among: ${cookies.map((c) => `${c.name} (${c.path})`).join(", ")}`);
    return;
  }
  await ctxA.clearCookies();
  await ctxA.addCookies([refreshCookie]);
  await pageA.reload();
  await openApp(pageA);
  assert.equal(await pageA.locator("body").getAttribute("data-auth"), "user", "still logged in after a refresh");
  await taskItem(pageA, "todo-list", "Call mom").waitFor();

  // Without reloading: an API call that meets a 401 refreshes and retries once.
  const again = (await ctxA.cookies()).find((c) => c.name === refreshCookie.name);
  await ctxA.clearCookies();
  await ctxA.addCookies([again]);
  await addTask(pageA, "Added after the token expired");
  await pageA.reload();
  await openApp(pageA);
  await taskItem(pageA, "todo-list", "Added after the token expired").waitFor();
  await taskItem(pageA, "todo-list", "Added after the token expired").getByTestId("task-open").click();
  await pageA.getByTestId("task-delete").click();
  await pageA.getByTestId("task-delete-confirm").click();
  await taskItem(pageA, "todo-list", "Added after the token expired").waitFor({ state: "detached" });
  assertNoPageErrors(pageA);
});

test("logging out shows the guest header, and it stays so after reload", async () => {
  await pageA.getByTestId("logout").click();
  await pageA.waitForSelector('body[data-auth="guest"]');
  await pageA.getByTestId("open-login").waitFor({ state: "visible" });
  await pageA.getByTestId("guest-landing").waitFor();
  assert.equal(await pageA.getByTestId("todo-list").count(), 0, "no tasks are shown to a guest");
  await pageA.reload();
  await openApp(pageA);
  assert.equal(await pageA.locator("body").getAttribute("data-auth"), "guest");
  const res = await ctxA.request.get(`${BASE_URL}/tasks`);
  assert.equal(res.status(), 401, "the API refuses the logged-out browser");
  assertNoPageErrors(pageA);
});

test("a wrong password is reported in the login form; the right one logs in", async () => {
  await pageA.getByTestId("open-login").click();
  await pageA.getByTestId("login-email").fill(emailA);
  await pageA.getByTestId("login-password").fill("not the password");
  await pageA.getByTestId("login-submit").click();
  const error = pageA.getByTestId("login-error");
  await error.waitFor({ state: "visible" });
  assert.match(await error.textContent(), /invalid email or password/i);
  await screenshot(pageA, "08-login-error");
  await pageA.keyboard.press("Escape");

  await loginViaUi(pageA, emailA);
  await taskItem(pageA, "todo-list", "Call mom").waitFor();
  assert.deepEqual(await titles(pageA, "done-list"), ["Buy milk"]);
  assertNoPageErrors(pageA);
});

test("registering an email that is taken shows the server's message in the form", async () => {
  const { context, page } = await newPage(browser);
  try {
    await openApp(page);
    await page.getByTestId("open-register").click();
    await page.getByTestId("register-email").fill(emailA.toUpperCase());
    await page.getByTestId("register-password").fill(PASSWORD);
    await page.getByTestId("register-password2").fill(PASSWORD);
    await page.getByTestId("register-submit").click();
    const error = page.getByTestId("register-error");
    await error.waitFor({ state: "visible" });
    assert.match(await error.textContent(), /already taken/i);
    assert.equal(await page.locator("body").getAttribute("data-auth"), "guest");
    assertNoPageErrors(page);
  } finally {
    await context.close();
  }
});

test("a second user sees none of the first user's tasks", async () => {
  const { context, page } = await newPage(browser);
  try {
    await openApp(page);
    await registerViaUi(page, uniqueEmail("bob"));
    await page.getByTestId("empty-state").waitFor({ state: "visible" });
    assert.deepEqual(await titles(page, "todo-list"), []);
    assert.deepEqual(await titles(page, "done-list"), []);
    const list = await context.request.get(`${BASE_URL}/tasks`);
    assert.equal(list.status(), 200);
    assert.deepEqual(await list.json(), []);
    if (taskIdA) {
      const other = await context.request.get(`${BASE_URL}/tasks/${taskIdA}`);
      assert.equal(other.status(), 404, "another user's task is a 404");
      const patch = await context.request.patch(`${BASE_URL}/tasks/${taskIdA}`, { data: { title: "hijacked" } });
      assert.equal(patch.status(), 404);
    }
    await addTask(page, "Bob's own task");
    assertNoPageErrors(page);
  } finally {
    await context.close();
  }
  // ...and the first user still doesn't see the second user's task.
  await pageA.reload();
  await openApp(pageA);
  await taskItem(pageA, "todo-list", "Call mom").waitFor();
  assert.deepEqual(await titles(pageA, "todo-list"), ["Call mom", "Write the quarterly report"]);
});

test("the language can be switched to Russian and is remembered", async () => {
  await pageA.getByTestId("lang-select").selectOption("ru");
  assert.equal((await pageA.getByTestId("logout").textContent()).trim(), "Выйти");
  assert.equal(await pageA.evaluate(() => document.documentElement.lang), "ru");
  await pageA.reload();
  await openApp(pageA);
  assert.equal((await pageA.getByTestId("logout").textContent()).trim(), "Выйти");
  await taskItem(pageA, "todo-list", "Call mom").waitFor();
  await screenshot(pageA, "09-board-ru");
  await pageA.getByTestId("lang-select").selectOption("en");
  assert.equal((await pageA.getByTestId("logout").textContent()).trim(), "Log out");
  assertNoPageErrors(pageA);
});

test("the board is usable at phone width and in dark mode", async () => {
  const { context, page } = await newPage(browser, { viewport: { width: 390, height: 844 }, colorScheme: "dark" });
  try {
    await openApp(page);
    await screenshot(page, "10-phone-guest-dark");
    await registerViaUi(page, uniqueEmail("phone"));
    await addTask(page, "Water the plants");
    await addTask(page, "A much longer task title that has to wrap nicely on a narrow phone screen");
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= 390, `no horizontal scrolling (scrollWidth ${width})`);
    await screenshot(page, "11-phone-board-dark");
    await taskItem(page, "todo-list", "Water the plants").getByTestId("task-open").click();
    await page.getByTestId("task-dialog").waitFor({ state: "visible" });
    await screenshot(page, "12-phone-task-dialog-dark");
    await page.keyboard.press("Escape");
    assertNoPageErrors(page);
  } finally {
    await context.close();
  }
});

test("the API docs page renders its operations under the Content-Security-Policy", async () => {
  const { context, page } = await newPage(browser);
  try {
    const res = await page.goto("/docs");
    assert.match(res.headers()["content-security-policy"], /script-src 'self'(;|$)/);
    await page.waitForSelector("#ops .op");
    assert.ok((await page.locator("#ops .op").count()) > 10);
    assertNoPageErrors(page);
  } finally {
    await context.close();
  }
});
