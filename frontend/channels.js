// Notification channels: where down/up alerts go besides the alert email. Add or edit one
// (kind, name, the kind's settings), send it a test, see its last delivery, delete it.
// Secrets (webhook secret, Telegram bot token, ntfy token) are never sent back by the API:
// their fields stay empty and are only sent when the user types a new value.
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
  setChildren,
} from "./dom.js";

const KINDS = ["webhook", "slack", "discord", "telegram", "ntfy", "email"];
/** Each kind's settings: [key, input type, required]. */
const FIELDS = {
  webhook: [["url", "url", true], ["secret", "password", false]],
  slack: [["url", "url", true]],
  discord: [["url", "url", true]],
  telegram: [["bot_token", "password", true], ["chat_id", "text", true]],
  ntfy: [["server", "url", true], ["topic", "text", true], ["token", "password", false]],
  email: [["address", "email", true]],
};
const SECRETS = new Set(["secret", "bot_token", "token"]);

export function mountChannels(container, ctx) {
  let alive = true;
  /** The channel being edited, or null when the form adds one. */
  let editing = null;

  const listArea = h("div", { "data-testid": "channels-list" }, h("div", { class: "loading-inline", "aria-busy": "true" }, h("span", { class: "spinner", "aria-hidden": "true" }), t("common.loading")));
  const formTitle = h("h2", null, t("channels.addTitle"));
  const kind = h("select", { id: "channel-kind", name: "kind", "aria-describedby": "channel-kind-error", "data-testid": "channel-kind" }, KINDS.map((k) => h("option", { value: k }, t(`channels.kind.${k}`))));
  const configArea = h("div", { class: "channel-config", "data-testid": "channel-config" });
  const enabled = h("input", { type: "checkbox", name: "enabled", checked: true, "data-testid": "channel-enabled" });
  const submit = h("button", { type: "submit", class: "button primary", "data-testid": "channel-save" }, t("channels.add"));
  const cancel = h("button", { type: "button", class: "button", hidden: true, "data-testid": "channel-cancel" }, t("common.cancel"));
  const form = h(
    "form",
    { novalidate: true, "data-testid": "channel-form" },
    h("div", { class: "form-error", role: "alert", hidden: true }),
    h("div", { class: "field" }, h("label", { for: "channel-kind" }, t("channels.kindLabel")), kind, h("p", { class: "field-error", id: "channel-kind-error", "data-error-for": "kind", hidden: true })),
    h(
      "div",
      { class: "field" },
      h("label", { for: "channel-name" }, t("channels.name")),
      h("input", { id: "channel-name", name: "name", type: "text", maxlength: "100", autocomplete: "off", required: true, "aria-describedby": "channel-name-error", "data-testid": "channel-name" }),
      h("p", { class: "field-error", id: "channel-name-error", "data-error-for": "name", hidden: true })
    ),
    configArea,
    h("p", { class: "field-error", "data-error-for": "config", hidden: true }),
    h("label", { class: "checkbox-row compact" }, enabled, h("span", null, t("channels.enabled"))),
    h("div", { class: "modal-actions" }, cancel, submit)
  );
  kind.addEventListener("change", () => renderConfig(kind.value, null));
  cancel.addEventListener("click", () => startAdd());
  form.addEventListener("submit", save);
  renderConfig(kind.value, null);

  container.appendChild(
    h(
      "section",
      { class: "channels", "data-testid": "channels-page" },
      h("div", { class: "page-head" }, h("h1", null, t("channels.title")), h("p", { class: "subtitle" }, t("channels.subtitle"))),
      h("div", { class: "panel" }, formTitle, form),
      h("div", { class: "panel" }, h("h2", { id: "channels-list-title" }, t("channels.listTitle")), listArea)
    )
  );
  load();
  return () => {
    alive = false;
  };

  /** The inputs of one kind; `current` (the public config) fills them when editing. */
  function renderConfig(k, current) {
    setChildren(
      configArea,
      FIELDS[k].map(([key, type, required]) => {
        const id = `channel-config-${key}`;
        const isSet = current && current[key] === "set" && SECRETS.has(key);
        const value = current && !SECRETS.has(key) && current[key] != null ? String(current[key]) : "";
        return h(
          "div",
          { class: "field" },
          h("label", { for: id }, t(`channels.field.${key}`), required ? null : h("span", { class: "muted small" }, " ", t("channels.optional"))),
          h("input", {
            id,
            name: `config.${key}`,
            type,
            value,
            autocomplete: type === "password" ? "new-password" : "off",
            placeholder: isSet ? t("channels.secretSet") : t(`channels.placeholder.${key}`),
            "aria-describedby": `${id}-error`,
            "data-testid": `channel-config-${key}`,
          }),
          h("p", { class: "field-error", id: `${id}-error`, "data-error-for": `config.${key}`, hidden: true })
        );
      })
    );
  }

  function startAdd() {
    editing = null;
    form.reset();
    clearFormErrors(form);
    enabled.checked = true;
    renderConfig(kind.value, null);
    formTitle.textContent = t("channels.addTitle");
    submit.textContent = t("channels.add");
    cancel.hidden = true;
  }

  function startEdit(channel) {
    editing = channel;
    clearFormErrors(form);
    kind.value = channel.kind;
    form.elements.name.value = channel.name;
    enabled.checked = channel.enabled;
    renderConfig(channel.kind, channel.config || {});
    formTitle.textContent = t("channels.editTitle", { name: channel.name });
    submit.textContent = t("channels.save");
    cancel.hidden = false;
    form.elements.name.focus();
  }

  async function save(e) {
    e.preventDefault();
    if (submit.disabled) return;
    clearFormErrors(form);
    const k = kind.value;
    const name = form.elements.name.value.trim();
    const config = {};
    let valid = true;
    if (!name) {
      showFieldError(form, "name", t("channels.nameRequired"));
      valid = false;
    }
    for (const [key, , required] of FIELDS[k]) {
      const value = form.elements[`config.${key}`].value.trim();
      // A secret already set stays as it is unless a new one is typed.
      const keep = editing && editing.kind === k && SECRETS.has(key) && editing.config && editing.config[key] === "set";
      if (value) config[key] = value;
      else if (required && !keep) {
        showFieldError(form, `config.${key}`, t("channels.required"));
        valid = false;
      }
    }
    if (!valid) {
      focusFirstInvalid(form);
      return;
    }
    const body = { kind: k, name, config, enabled: enabled.checked };
    setBusy(submit, true);
    try {
      if (editing) await request("PATCH", `/channels/${encodeURIComponent(editing.id)}`, { json: body });
      else await request("POST", "/channels", { json: body });
      if (!alive) return;
      toast(t(editing ? "channels.saved" : "channels.added", { name }), { kind: "success" });
      if (k === "email" && ctx.user && config.address && config.address.toLowerCase() !== String(ctx.user.email).toLowerCase()) toast(t("channels.confirmSent", { address: config.address }), { kind: "info" });
      startAdd();
      load();
    } catch (err) {
      let mapped = false;
      for (const [field, msg] of Object.entries(err.details || {})) if (showFieldError(form, field, String(msg))) mapped = true;
      if (!mapped) showFormError(form, errorMessage(err));
      focusFirstInvalid(form);
    } finally {
      setBusy(submit, false);
    }
  }

  async function load() {
    let channels;
    try {
      channels = await request("GET", "/channels");
    } catch (err) {
      if (alive) setChildren(listArea, h("div", { class: "inline-error", role: "alert" }, errorMessage(err)));
      return;
    }
    if (!alive) return;
    if (!channels.length) {
      setChildren(listArea, h("p", { class: "empty-inline", "data-testid": "channels-empty" }, t("channels.empty")));
      return;
    }
    setChildren(
      listArea,
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "data-table", "aria-labelledby": "channels-list-title" },
          h(
            "thead",
            null,
            h(
              "tr",
              null,
              h("th", { scope: "col" }, t("channels.name")),
              h("th", { scope: "col" }, t("channels.kindLabel")),
              h("th", { scope: "col" }, t("channels.state")),
              h("th", { scope: "col" }, t("channels.lastDelivery")),
              h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, t("common.actions")))
            )
          ),
          h("tbody", null, channels.map(row))
        )
      )
    );
  }

  /** The delivery runs in the background: look again a few times until its outcome shows. */
  function watchDelivery(channel) {
    const before = channel.last_delivery ? channel.last_delivery.at : null;
    let tries = 0;
    const tick = async () => {
      if (!alive || ++tries > 10) return;
      try {
        const now = await request("GET", `/channels/${encodeURIComponent(channel.id)}`);
        if (now.last_delivery && now.last_delivery.at !== before) {
          if (alive) load();
          return;
        }
      } catch {
        return; // deleted meanwhile, or offline: the list says so on its next load
      }
      setTimeout(tick, 1500);
    };
    setTimeout(tick, 1000);
  }

  function lastDelivery(d) {
    if (!d) return h("span", { class: "muted" }, t("channels.never"));
    const badge = d.status === "ok" ? h("span", { class: "badge ok" }, t("channels.status.ok")) : h("span", { class: "badge bad" }, t(`channels.status.${d.status}`));
    return h(
      "div",
      { "data-testid": "channel-last-delivery", "data-status": d.status },
      badge,
      " ",
      h("time", { datetime: d.at, title: formatDateTime(d.at) }, formatRelative(d.at)),
      d.error ? h("div", { class: "muted small channel-error" }, d.error) : null
    );
  }

  function row(channel) {
    const actions = h("td", { class: "channel-actions" });
    const test = h("button", { type: "button", class: "button small", "data-testid": "channel-test", disabled: !channel.confirmed }, t("channels.test"));
    test.addEventListener("click", async () => {
      setBusy(test, true);
      try {
        await request("POST", `/channels/${encodeURIComponent(channel.id)}/test`);
        toast(t("channels.testQueued", { name: channel.name }), { kind: "info" });
        watchDelivery(channel);
      } catch (err) {
        toast(errorMessage(err), { kind: "error" });
      } finally {
        setBusy(test, false);
      }
    });
    const edit = h("button", { type: "button", class: "button small", "data-testid": "channel-edit" }, t("channels.edit"));
    edit.addEventListener("click", () => startEdit(channel));
    const remove = h("button", { type: "button", class: "button small danger-outline", "data-testid": "channel-delete" }, t("channels.delete"));
    remove.addEventListener("click", () => {
      const yes = h("button", { type: "button", class: "button small danger", "data-testid": "channel-delete-confirm" }, t("channels.delete"));
      const no = h("button", { type: "button", class: "button small" }, t("common.cancel"));
      no.addEventListener("click", () => {
        setChildren(actions, test, " ", edit, " ", remove);
        remove.focus();
      });
      yes.addEventListener("click", async () => {
        setBusy(yes, true);
        try {
          await request("DELETE", `/channels/${encodeURIComponent(channel.id)}`);
          toast(t("channels.deleted", { name: channel.name }), { kind: "info" });
          if (editing && editing.id === channel.id) startAdd();
        } catch (err) {
          // Already gone (deleted in another tab) is what the user wanted.
          if (err.status !== 404) toast(errorMessage(err), { kind: "error" });
        }
        if (alive) load();
      });
      setChildren(actions, h("span", { class: "muted small" }, t("channels.deleteConfirm")), " ", yes, " ", no);
      no.focus();
    });
    setChildren(actions, test, " ", edit, " ", remove);
    const state = !channel.confirmed
      ? h("span", { class: "badge muted" }, t("channels.unconfirmed"))
      : channel.enabled
        ? h("span", { class: "badge ok" }, t("channels.on"))
        : h("span", { class: "badge muted" }, t("channels.off"));
    return h(
      "tr",
      { "data-testid": "channel-row", "data-channel-id": channel.id },
      h("td", null, channel.name),
      h("td", null, t(`channels.kind.${channel.kind}`)),
      h("td", null, state),
      h("td", null, lastDelivery(channel.last_delivery)),
      actions
    );
  }
}
