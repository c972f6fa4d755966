// Accessibility: axe-core finds no serious or critical problems on the main
// screens, in the light and the dark theme.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { launch, newPage, openApp, uniqueEmail, registerViaUi, addTask, taskItem, waitForSaves, axeViolations, formatViolations } from "../lib/harness.mjs";

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  if (browser) await browser.close();
});

for (const colorScheme of ["light", "dark"]) {
  test(`main screens have no serious accessibility violations (${colorScheme})`, async () => {
    const { context, page } = await newPage(browser, { colorScheme });
    try {
      await openApp(page);
      let v = await axeViolations(page);
      assert.deepEqual(v, [], `guest landing:\n${formatViolations(v)}`);

      await page.getByTestId("open-register").click();
      await page.getByTestId("register-dialog").waitFor({ state: "visible" });
      await page.getByTestId("register-submit").click(); // shows field errors
      await page.getByTestId("register-email-error").waitFor({ state: "visible" });
      v = await axeViolations(page);
      assert.deepEqual(v, [], `register dialog with errors:\n${formatViolations(v)}`);
      await page.keyboard.press("Escape");

      await registerViaUi(page, uniqueEmail(`a11y-${colorScheme}`));
      await page.getByTestId("empty-state").waitFor({ state: "visible" });
      v = await axeViolations(page);
      assert.deepEqual(v, [], `empty board:\n${formatViolations(v)}`);

      await addTask(page, "First");
      await addTask(page, "Second");
      await taskItem(page, "todo-list", "Second").getByTestId("task-toggle").click();
      await waitForSaves(page);
      await page.waitForTimeout(1300); // let the "just added" highlight fade
      v = await axeViolations(page);
      assert.deepEqual(v, [], `board:\n${formatViolations(v)}`);

      await taskItem(page, "todo-list", "First").getByTestId("task-open").click();
      await page.getByTestId("task-dialog").waitFor({ state: "visible" });
      await page.getByTestId("task-description-input").fill("Some words");
      await page.waitForSelector('[data-testid="save-state"][data-state="saved"]');
      v = await axeViolations(page);
      assert.deepEqual(v, [], `task dialog:\n${formatViolations(v)}`);
      await page.keyboard.press("Escape");

      for (const hash of ["#/resources", "#/feed"]) {
        await page.goto(`/${hash}`);
        await page.waitForFunction(() => !document.querySelector("#view .loading-inline, #view .loading-screen"));
        v = await axeViolations(page);
        assert.deepEqual(v, [], `${hash}:\n${formatViolations(v)}`);
      }
      assert.deepEqual(page.errors, []);
    } finally {
      await context.close();
    }
  });
}
