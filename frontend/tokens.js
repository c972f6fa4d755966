// Personal API tokens: create one (name, scopes, lifetime), see its secret once
// with a copy button, list the others (never their secrets) and revoke them.
import { request } from "./api.js";
import { t } from "./i18n.js";
import {
  h,
  toast,
  errorMessage,
  setBusy,
  formatDateTime,
  formatRelative,
  clearFormErrors,
  showFieldError,
  showFormError,
  focusFirstInvalid,
  announce,
  setChildren,
} from "./dom.js";

const SCOPES = ["tasks:read", "tasks:write", "resources:read", "resources:write", "status:write", "admin"];
/** Lifetimes offered, in days; "" is a token that does not expire. */
const LIFETIMES = ["7", "30", "90", "365", ""];

export function mountTokens(container, ctx) {
  let alive = true;
  const isAdmin = !!(ctx.user && ctx.user.role === "admin");

  const secretPanel = h("div", { class: "panel token-secret", "data-testid": "token-secret", hidden: true });
  const listArea = h("div", { "data-testid": "tokens-list" }, h("div", { class: "loading-inline", "aria-busy": "true" }, h("span", { class: "spinner", "aria-hidden": "true" }), t("common.loading")));
  const form = createForm();

  container.appendChild(
    h(
      "section",
      { class: "tokens", "data-testid": "tokens-page" },
      h("div", { class: "page-head" }, h("h1", null, t("tokens.title")), h("p", { class: "subtitle" }, t("tokens.subtitle"))),
      secretPanel,
      h("div", { class: "panel" }, h("h2", null, t("tokens.createTitle")), form),
      h("div", { class: "panel" }, h("h2", { id: "tokens-list-title" }, t("tokens.listTitle")), listArea)
    )
  );
  load();
  return () => {
    alive = false;
  };

  function createForm() {
    const scopeBoxes = SCOPES.filter((s) => s !== "admin" || isAdmin).map((scope) =>
      h(
        "label",
        { class: "checkbox-row compact" },
        h("input", { type: "checkbox", name: "scope", value: scope, checked: scope.endsWith(":read"), "data-testid": `token-scope-${scope}` }),
        h("span", null, h("code", null, scope), " ", h("span", { class: "muted small" }, t(`tokens.scope.${scope}`)))
      )
    );
    const lifetime = h(
      "select",
      { id: "token-expiry", name: "expires_in_days", "aria-describedby": "token-expiry-error", "data-testid": "token-expiry" },
      LIFETIMES.map((d) => h("option", { value: d, selected: d === "90" }, d ? t("tokens.days", { count: Number(d) }) : t("tokens.never")))
    );
    const submit = h("button", { type: "submit", class: "button primary", "data-testid": "token-create" }, t("tokens.create"));
    const f = h(
      "form",
      { novalidate: true, "data-testid": "token-form" },
      h("div", { class: "form-error", role: "alert", hidden: true }),
      h(
        "div",
        { class: "field" },
        h("label", { for: "token-name" }, t("tokens.name")),
        h("input", { id: "token-name", name: "name", type: "text", maxlength: "100", autocomplete: "off", required: true, placeholder: t("tokens.namePlaceholder"), "aria-describedby": "token-name-error", "data-testid": "token-name" }),
        h("p", { class: "field-error", id: "token-name-error", "data-error-for": "name", hidden: true })
      ),
      h(
        "fieldset",
        { class: "field token-scopes" },
        h("legend", null, t("tokens.scopes")),
        scopeBoxes,
        h("p", { class: "field-error", "data-error-for": "scopes", "data-testid": "token-scopes-error", hidden: true })
      ),
      h(
        "div",
        { class: "field" },
        h("label", { for: "token-expiry" }, t("tokens.expiry")),
        lifetime,
        h("p", { class: "field-error", id: "token-expiry-error", "data-error-for": "expires_in_days", hidden: true })
      ),
      h("div", { class: "modal-actions" }, submit)
    );
    f.addEventListener("submit", async (e) => {
      e.preventDefault();
      if (submit.disabled) return;
      clearFormErrors(f);
      const name = f.elements.name.value.trim();
      const scopes = [...f.querySelectorAll('input[name="scope"]:checked')].map((el) => el.value);
      let valid = true;
      if (!name) {
        showFieldError(f, "name", t("tokens.nameRequired"));
        valid = false;
      }
      if (!scopes.length) {
        showFieldError(f, "scopes", t("tokens.scopesRequired"));
        valid = false;
      }
      if (!valid) {
        focusFirstInvalid(f);
        return;
      }
      const body = { name, scopes };
      if (lifetime.value) body.expires_in_days = Number(lifetime.value);
      setBusy(submit, true);
      try {
        const created = await request("POST", "/tokens", { json: body });
        if (!alive) return;
        f.elements.name.value = "";
        showSecret(created);
        load();
      } catch (err) {
        let mapped = false;
        for (const [field, msg] of Object.entries(err.details || {})) if (showFieldError(f, field, String(msg))) mapped = true;
        if (!mapped) showFormError(f, errorMessage(err));
        focusFirstInvalid(f);
      } finally {
        setBusy(submit, false);
      }
    });
    return f;
  }

  /** The secret, this once: the server keeps only its hash. */
  function showSecret(created) {
    const code = h("code", { class: "token-value", "data-testid": "token-value" }, created.token);
    const copy = h("button", { type: "button", class: "button small", "data-testid": "token-copy" }, t("tokens.copy"));
    copy.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(created.token);
        toast(t("tokens.copied"), { kind: "success" });
      } catch {
        // No clipboard access (an http page, a denied permission): select it for Ctrl+C.
        const range = document.createRange();
        range.selectNodeContents(code);
        const sel = window.getSelection();
        sel.removeAllRanges();
        sel.addRange(range);
        toast(t("tokens.copyManually"), { kind: "info" });
      }
    });
    const done = h("button", { type: "button", class: "button small", "data-testid": "token-secret-done" }, t("tokens.secretDone"));
    done.addEventListener("click", () => {
      secretPanel.hidden = true;
      secretPanel.replaceChildren();
    });
    setChildren(
      secretPanel,
      h("h2", null, t("tokens.secretTitle", { name: created.name })),
      h("p", { class: "notice" }, t("tokens.secretOnce")),
      h("div", { class: "token-secret-row" }, code, copy),
      h("div", { class: "modal-actions" }, done)
    );
    secretPanel.hidden = false;
    copy.focus();
    announce(t("tokens.createdNotice"));
  }

  async function load() {
    let tokens;
    try {
      tokens = await request("GET", "/tokens");
    } catch (err) {
      if (alive) setChildren(listArea, h("div", { class: "inline-error", role: "alert" }, errorMessage(err)));
      return;
    }
    if (!alive) return;
    if (!tokens.length) {
      setChildren(listArea, h("p", { class: "empty-inline", "data-testid": "tokens-empty" }, t("tokens.empty")));
      return;
    }
    setChildren(
      listArea,
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "data-table", "aria-labelledby": "tokens-list-title" },
          h(
            "thead",
            null,
            h(
              "tr",
              null,
              h("th", { scope: "col" }, t("tokens.name")),
              h("th", { scope: "col" }, t("tokens.scopes")),
              h("th", { scope: "col" }, t("tokens.createdAt")),
              h("th", { scope: "col" }, t("tokens.lastUsed")),
              h("th", { scope: "col" }, t("tokens.expires")),
              h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, t("common.actions")))
            )
          ),
          h("tbody", null, tokens.map(row))
        )
      )
    );
  }

  function row(token) {
    const expired = token.expires_at && new Date(token.expires_at).getTime() <= Date.now();
    const actions = h("td", { class: "token-actions" });
    const revoke = h("button", { type: "button", class: "button small danger-outline", "data-testid": "token-revoke" }, t("tokens.revoke"));
    revoke.addEventListener("click", () => {
      const yes = h("button", { type: "button", class: "button small danger", "data-testid": "token-revoke-confirm" }, t("tokens.revokeYes"));
      const no = h("button", { type: "button", class: "button small" }, t("common.cancel"));
      no.addEventListener("click", () => {
        setChildren(actions, revoke);
        revoke.focus();
      });
      yes.addEventListener("click", async () => {
        setBusy(yes, true);
        try {
          await request("DELETE", `/tokens/${encodeURIComponent(token.id)}`);
          toast(t("tokens.revoked", { name: token.name }), { kind: "info" });
        } catch (err) {
          // Already gone (revoked in another tab) is what the user wanted.
          if (err.status !== 404) toast(errorMessage(err), { kind: "error" });
        }
        if (alive) load();
      });
      setChildren(actions, h("span", { class: "muted small" }, t("tokens.revokeConfirm")), " ", yes, " ", no);
      no.focus();
    });
    actions.appendChild(revoke);
    const when = (v, none) => (v ? h("time", { datetime: v, title: formatDateTime(v) }, formatRelative(v)) : h("span", { class: "muted" }, none));
    return h(
      "tr",
      { "data-testid": "token-row", "data-token-id": token.id },
      h("td", null, token.name),
      h("td", null, token.scopes.map((s) => h("span", { class: "chip" }, s))),
      h("td", null, when(token.created_at, "")),
      h("td", null, when(token.last_used_at, t("tokens.neverUsed"))),
      h("td", null, expired ? h("span", { class: "badge bad" }, t("tokens.expired")) : when(token.expires_at, t("tokens.never"))),
      actions
    );
  }
}
