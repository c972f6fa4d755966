// Pulseboard single-page app: boot, header, authentication, hash router.
import { request, onSessionLost } from "./api.js";
import { t, initLang, setLang, getLang, applyStatic, onLangChange } from "./i18n.js";
import {
  h,
  icon,
  ICONS,
  toast,
  clearFormErrors,
  showFieldError,
  showFormError,
  focusFirstInvalid,
  errorMessage,
  setBusy,
  openDialog,
  restoreFocus,
  messagePanel,
} from "./dom.js";
import { mountBoard, resetBoard, flushAllSaves } from "./board.js";
import { mountResources, mountResource, mountFeed } from "./watch.js";
import { mountLogs } from "./livelog.js";
import { mountJobs } from "./jobs.js";
import { mountTokens } from "./tokens.js";
import { mountChannels } from "./channels.js";

const state = {
  user: null,
  authKnown: false,
  bootError: null,
  cleanup: null,
  routeKey: null,
  navigated: false,
};

const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------- boot

async function boot() {
  initLang();
  const select = $("lang-select");
  select.value = getLang();
  select.addEventListener("change", () => setLang(select.value));
  onLangChange(() => {
    select.value = getLang();
    renderHeader();
    renderBanner();
    route({ force: true });
  });

  $("skip-link").addEventListener("click", () => {
    const main = $("main");
    const heading = main.querySelector("h1");
    (heading || main).focus();
  });
  $("open-login").addEventListener("click", () => openAuth("login"));
  $("open-register").addEventListener("click", () => openAuth("register"));
  $("logout").addEventListener("click", logout);
  setupAuthDialog("register");
  setupAuthDialog("login");

  window.addEventListener("hashchange", () => route());
  onSessionLost(() => {
    if (!state.user) return;
    becomeGuest();
    toast(t("auth.sessionExpired"), { kind: "error" });
    openAuth("login");
  });

  await loadUser();
  document.documentElement.dataset.ready = "true";
}

async function loadUser() {
  state.bootError = null;
  try {
    state.user = await request("GET", "/user");
  } catch (err) {
    state.user = null;
    if (err.status !== 401) state.bootError = err;
  }
  state.authKnown = true;
  renderHeader();
  renderBanner();
  route({ force: true });
}

function renderBanner() {
  const banner = $("banner");
  if (!state.bootError) {
    banner.hidden = true;
    banner.replaceChildren();
    return;
  }
  banner.hidden = false;
  banner.replaceChildren(
    h("span", null, state.bootError.status === 0 || state.bootError.status === 404 ? t("err.unreachable") : errorMessage(state.bootError)),
    h(
      "button",
      {
        type: "button",
        class: "button small",
        onclick: () => loadUser(),
      },
      t("common.retry")
    )
  );
}

// ---------------------------------------------------------------- header

function renderHeader() {
  const body = document.body;
  body.dataset.auth = !state.authKnown ? "unknown" : state.user ? "user" : "guest";
  const email = $("user-email");
  email.textContent = state.user ? state.user.email : "";
  email.title = state.user ? state.user.email : "";
  $("main-nav").hidden = !state.user;
  const isAdmin = !!(state.user && state.user.role === "admin");
  for (const tab of document.querySelectorAll("#main-nav [data-admin]")) tab.hidden = !isAdmin;
  markActiveTab();
}

function markActiveTab() {
  const { name } = currentRoute();
  const nav = $("main-nav");
  for (const a of nav.querySelectorAll("[data-route]")) {
    const active = a.dataset.route === name;
    if (active) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
    // On a narrow screen the tabs scroll sideways: keep the current one in view.
    if (active && !nav.hidden && !a.hidden && nav.scrollWidth > nav.clientWidth) {
      const nr = nav.getBoundingClientRect();
      const ar = a.getBoundingClientRect();
      if (ar.right > nr.right) nav.scrollLeft += ar.right - nr.right + 8;
      else if (ar.left < nr.left) nav.scrollLeft -= nr.left - ar.left + 8;
    }
  }
}

// ---------------------------------------------------------------- auth dialogs

function openAuth(which) {
  const other = which === "login" ? "register" : "login";
  const otherDialog = $(`${other}-dialog`);
  if (otherDialog.open) otherDialog.close();
  const dialog = $(`${which}-dialog`);
  const form = $(`${which}-form`);
  clearFormErrors(form);
  openDialog(dialog, form.elements.email);
}

function setupAuthDialog(which) {
  const dialog = $(`${which}-dialog`);
  const form = $(`${which}-form`);
  const submit = form.querySelector('[type="submit"]');

  for (const btn of dialog.querySelectorAll("[data-close]")) btn.addEventListener("click", () => dialog.close());
  for (const btn of dialog.querySelectorAll("[data-switch]")) {
    btn.addEventListener("click", () => {
      const email = form.elements.email.value;
      dialog.close();
      openAuth(btn.dataset.switch);
      const otherForm = $(`${btn.dataset.switch}-form`);
      if (email && !otherForm.elements.email.value) otherForm.elements.email.value = email;
    });
  }
  dialog.addEventListener("close", () => {
    // Don't keep passwords around in a closed dialog.
    for (const el of form.querySelectorAll('input[type="password"]')) el.value = "";
    clearFormErrors(form);
    restoreFocus(dialog, $("main"));
  });
  // Clear a field's error as soon as the user edits it.
  form.addEventListener("input", (e) => {
    const name = e.target.name;
    const slot = name && form.querySelector(`[data-error-for="${name}"]`);
    if (slot && !slot.hidden) {
      slot.hidden = true;
      slot.textContent = "";
      e.target.removeAttribute("aria-invalid");
    }
  });

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (submit.disabled) return;
    clearFormErrors(form);
    const email = form.elements.email.value.trim();
    const password = form.elements.password.value;
    let valid = true;
    if (!email) {
      showFieldError(form, "email", t("err.emailRequired"));
      valid = false;
    } else if (!/^[^\s@]+@[^\s@]+$/.test(email)) {
      showFieldError(form, "email", t("err.emailInvalid"));
      valid = false;
    }
    if (!password) {
      showFieldError(form, "password", t("err.passwordRequired"));
      valid = false;
    } else if (which === "register" && password.length < 8) {
      showFieldError(form, "password", t("err.passwordShort", { min: 8 }));
      valid = false;
    }
    if (which === "register" && form.elements.password2.value !== password) {
      showFieldError(form, "password2", t("err.passwordMismatch"));
      valid = false;
    }
    if (!valid) {
      focusFirstInvalid(form);
      return;
    }

    setBusy(submit, true);
    try {
      const path = which === "register" ? "/user" : "/session";
      const data = await request("POST", path, { json: { email, password } });
      dialog.close();
      form.reset();
      await onLoggedIn(data, which);
    } catch (err) {
      showAuthError(form, which, err);
    } finally {
      setBusy(submit, false);
    }
  });
}

function showAuthError(form, which, err) {
  let mapped = false;
  if (err.details) {
    for (const [field, msg] of Object.entries(err.details)) {
      const text = Array.isArray(msg) ? msg.join(" ") : String(msg);
      if (showFieldError(form, field, text)) mapped = true;
    }
  }
  if (!mapped) {
    let message;
    if (which === "register" && err.status === 409) message = t("err.emailTaken");
    else if (which === "login" && err.status === 401) message = t("err.invalidCredentials");
    else if (err.status === 404 || err.status === 405) message = t("err.unreachable");
    else message = errorMessage(err);
    // Prefer the server's own wording in English; it is the most precise.
    if (getLang() === "en" && err.serverMessage && err.status < 500 && err.status !== 429 && err.status !== 404) {
      message = err.serverMessage;
    }
    showFormError(form, message);
  }
  const first = form.querySelector('[aria-invalid="true"]') || form.elements.email;
  if (first) first.focus();
}

async function onLoggedIn(data, how) {
  let user = data && data.email ? data : null;
  // The login/registration response may carry fewer fields than GET /user (e.g. no role).
  try {
    user = await request("GET", "/user");
  } catch {
    /* keep what we have */
  }
  if (!user) return;
  state.user = user;
  state.bootError = null;
  renderBanner();
  renderHeader();
  route({ force: true });
  toast(how === "register" ? t("auth.welcomeNew") : t("auth.welcomeBack"), { kind: "success" });
}

async function logout() {
  const btn = $("logout");
  setBusy(btn, true);
  try {
    await flushAllSaves();
  } catch {
    /* a failed save was already reported */
  }
  try {
    await request("DELETE", "/session");
  } catch (err) {
    if (err.status !== 401) {
      setBusy(btn, false);
      toast(errorMessage(err), { kind: "error" });
      return;
    }
  }
  setBusy(btn, false);
  becomeGuest();
  toast(t("auth.loggedOut"), { kind: "info" });
}

function becomeGuest() {
  state.user = null;
  resetBoard();
  for (const d of document.querySelectorAll("dialog[open]")) d.close();
  renderHeader();
  if (location.hash && location.hash !== "#/") location.hash = "#/";
  route({ force: true });
}

// ---------------------------------------------------------------- router

function currentRoute() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const qIndex = raw.indexOf("?");
  const path = (qIndex >= 0 ? raw.slice(0, qIndex) : raw).replace(/\/+$/, "") || "/";
  const params = new URLSearchParams(qIndex >= 0 ? raw.slice(qIndex + 1) : "");
  let name = "notfound";
  let arg = null;
  if (path === "/") name = "board";
  else if (path === "/resources") name = "resources";
  else if (path.startsWith("/resources/")) {
    name = "resource";
    arg = decodeURIComponent(path.slice("/resources/".length));
  } else if (path === "/feed") name = "feed";
  else if (path === "/admin/logs") name = "logs";
  else if (path === "/admin/jobs") name = "jobs";
  else if (path === "/tokens") name = "tokens";
  else if (path === "/channels") name = "channels";
  const tabName = name === "resource" ? "resources" : name;
  return { name: tabName, view: name, arg, params, path, raw };
}

function route({ force = false } = {}) {
  if (!state.authKnown) return;
  const r = currentRoute();
  const key = `${state.user ? state.user.id : "guest"}|${r.raw}`;
  if (!force && key === state.routeKey) return;
  const sameView = state.routeKey && state.routeKey.split("|")[1].split("?")[0] === r.raw.split("?")[0];
  state.routeKey = key;

  if (state.cleanup) {
    try {
      state.cleanup();
    } catch (e) {
      console.error(e);
    }
    state.cleanup = null;
  }
  markActiveTab();
  const view = $("view");
  view.replaceChildren();
  view.dataset.route = state.user ? r.view : "guest";

  const ctx = {
    user: state.user,
    params: r.params,
    arg: r.arg,
    navigate: (hash) => {
      if (location.hash === hash) route({ force: true });
      else location.hash = hash;
    },
    openLogin: () => openAuth("login"),
  };

  let title = t("app.name");
  try {
    if (!state.user) {
      view.appendChild(renderGuest(r));
    } else {
      let result = null;
      switch (r.view) {
        case "board":
          result = mountBoard(view, ctx);
          title = t("board.title");
          break;
        case "resources":
          result = mountResources(view, ctx);
          title = t("resources.title");
          break;
        case "resource":
          result = mountResource(view, ctx);
          title = t("resource.title");
          break;
        case "feed":
          result = mountFeed(view, ctx);
          title = t("feed.title");
          break;
        case "logs":
          if (state.user.role === "admin") {
            result = mountLogs(view, ctx);
          } else {
            view.appendChild(messagePanel(t("logs.adminOnly"), t("logs.adminOnlyHint")));
          }
          title = t("logs.title");
          break;
        case "jobs":
          if (state.user.role === "admin") {
            result = mountJobs(view, ctx);
          } else {
            view.appendChild(messagePanel(t("logs.adminOnly"), t("jobs.adminOnlyHint")));
          }
          title = t("jobs.title");
          break;
        case "channels":
          result = mountChannels(view, ctx);
          title = t("channels.title");
          break;
        case "tokens":
          result = mountTokens(view, ctx);
          title = t("tokens.title");
          break;
        default:
          view.appendChild(messagePanel(t("notFound.title"), t("notFound.text"), h("a", { href: "#/", class: "button primary" }, t("notFound.back"))));
          title = t("notFound.title");
      }
      if (typeof result === "function") state.cleanup = result;
    }
  } catch (err) {
    console.error(err);
    view.replaceChildren(messagePanel(t("err.viewCrashed"), String(err && err.message ? err.message : err)));
  }
  document.title = title === t("app.name") ? title : `${title} · ${t("app.name")}`;

  // Move focus to the new view's heading on in-app navigation (not on first load,
  // nor on filter/page changes inside the same view).
  if (state.navigated && !sameView && !force) {
    const heading = view.querySelector("h1");
    if (heading) {
      heading.setAttribute("tabindex", "-1");
      heading.focus({ preventScroll: false });
    }
  }
  state.navigated = true;
}

function renderGuest(r) {
  const wantsProtected = r.view !== "board";
  return h(
    "section",
    { class: "hero", "data-testid": "guest-landing" },
    h(
      "div",
      { class: "hero-text" },
      h("h1", null, t("guest.title")),
      h("p", { class: "lead" }, t("guest.lead")),
      wantsProtected ? h("p", { class: "notice" }, t("guest.loginToContinue")) : null,
      h(
        "div",
        { class: "hero-actions" },
        h("button", { type: "button", class: "button primary large", "data-testid": "hero-register", onclick: () => openAuth("register") }, t("guest.cta")),
        h("button", { type: "button", class: "button large", "data-testid": "hero-login", onclick: () => openAuth("login") }, t("auth.login"))
      )
    ),
    h(
      "ul",
      { class: "features" },
      feature(ICONS.board, t("guest.f1Title"), t("guest.f1Text")),
      feature(ICONS.globe, t("guest.f2Title"), t("guest.f2Text")),
      feature(ICONS.feed, t("guest.f3Title"), t("guest.f3Text"))
    )
  );
}

function feature(path, title, text) {
  return h("li", { class: "feature" }, h("span", { class: "feature-icon" }, icon(path, { size: 22 })), h("h2", null, title), h("p", null, text));
}

// Flush unsaved task edits when the page is hidden or closed.
window.addEventListener("pagehide", () => {
  flushAllSaves().catch(() => {});
});
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "hidden") flushAllSaves().catch(() => {});
});

boot().catch((err) => {
  console.error(err);
  const view = document.getElementById("view");
  if (view) view.replaceChildren(messagePanel("Pulseboard", String(err && err.message ? err.message : err)));
});
