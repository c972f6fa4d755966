// A resource's alert settings (alert after N failures, removal, reminders, channels), saved as
// they change like the task editor: each change is one PATCH of that field, and a refused value
// shows the server's message under its field.
import { request } from "./api.js";
import { t } from "./i18n.js";
import { h, showFieldError, clearFormErrors, errorMessage, showFormError } from "./dom.js";

const SAVE_DELAY_MS = 400;

/** The settings panel of resource `r`; `onSaved(resource)` gets the updated resource. */
export function alertSettingsPanel(r, onSaved) {
  const path = `/resources/${encodeURIComponent(r.uuid)}`;
  const status = h("p", { class: "muted settings-status", role: "status", "data-testid": "alert-settings-status" });
  const field = (name, label, input, hint) =>
    h("div", { class: "field" }, h("label", { for: `as-${name}` }, label), input, hint || null, h("p", { class: "field-error", "data-error-for": name, hidden: true }));
  const number = (name, value, min, max, placeholder) =>
    h("input", { type: "number", id: `as-${name}`, name, min, max, step: 1, value: value ?? "", placeholder: placeholder || "", "data-testid": `alert-${name}` });

  const alertAfter = number("alert_after", r.alert_after ?? 1, 1, 100);
  const removal = h(
    "select",
    { id: "as-removal", name: "removal", "aria-label": t("alerts.removal"), "data-testid": "alert-removal" },
    h("option", { value: "default" }, t("alerts.removalDefault")),
    h("option", { value: "never" }, t("alerts.removalNever")),
    h("option", { value: "after" }, t("alerts.removalAfter"))
  );
  removal.value = r.delete_after_failures === null || r.delete_after_failures === undefined ? "default" : r.delete_after_failures === 0 ? "never" : "after";
  const deleteAfter = number("delete_after_failures", r.delete_after_failures || "", 1, 1000);
  deleteAfter.hidden = removal.value !== "after";
  const left = h("p", { class: "muted", "data-testid": "removal-left" });
  const showLeft = (res) => {
    left.textContent = res.removal_after_failures_left === null || res.removal_after_failures_left === undefined ? t("alerts.neverRemoved") : t("alerts.removedAfter", { count: res.removal_after_failures_left });
  };
  showLeft(r);
  const remind = number("remind_every_hours", r.remind_every_hours, 1, 168, t("alerts.noReminder"));

  const allChannels = h("input", { type: "checkbox", id: "as-all-channels", checked: r.channels === null || r.channels === undefined, "data-testid": "alert-all-channels" });
  const channelBoxes = h("div", { class: "channel-boxes", "data-testid": "alert-channels" }, h("p", { class: "muted" }, t("alerts.loadingChannels")));

  const form = h(
    "form",
    { class: "alert-settings", novalidate: true, "data-testid": "alert-settings" },
    field("alert_after", t("alerts.alertAfter"), alertAfter),
    field("delete_after_failures", t("alerts.removal"), h("div", { class: "inline" }, removal, deleteAfter), left),
    field("remind_every_hours", t("alerts.remind"), remind),
    h("fieldset", null, h("legend", null, t("alerts.channels")), h("label", { class: "check" }, allChannels, " ", t("alerts.allChannels")), channelBoxes, h("p", { class: "field-error", "data-error-for": "channels", hidden: true })),
    h("div", { class: "form-error", role: "alert", hidden: true }),
    status
  );
  form.addEventListener("submit", (e) => e.preventDefault());

  // One pending PATCH body, sent after a short pause so typing "12" is one request, not two.
  let pending = {};
  let timer = null;
  const save = (patch) => {
    Object.assign(pending, patch);
    clearTimeout(timer);
    timer = setTimeout(flush, SAVE_DELAY_MS);
  };
  async function flush() {
    const body = pending;
    pending = {};
    clearFormErrors(form);
    status.textContent = t("alerts.saving");
    try {
      const saved = await request("PATCH", path, { json: body });
      status.textContent = t("alerts.saved");
      if (saved) {
        showLeft(saved);
        onSaved && onSaved(saved);
      }
    } catch (err) {
      status.textContent = "";
      let mapped = false;
      for (const [name, msg] of Object.entries(err.details || {})) if (showFieldError(form, name, String(msg))) mapped = true;
      if (!mapped) showFormError(form, errorMessage(err));
    }
  }
  const intOrNull = (input) => (input.value.trim() === "" ? null : Number(input.value));

  alertAfter.addEventListener("change", () => save({ alert_after: intOrNull(alertAfter) }));
  const removalValue = () => (removal.value === "default" ? null : removal.value === "never" ? 0 : intOrNull(deleteAfter));
  removal.addEventListener("change", () => {
    deleteAfter.hidden = removal.value !== "after";
    if (removal.value === "after" && deleteAfter.value === "") {
      deleteAfter.focus();
      return;
    }
    save({ delete_after_failures: removalValue() });
  });
  deleteAfter.addEventListener("change", () => save({ delete_after_failures: removalValue() }));
  remind.addEventListener("change", () => save({ remind_every_hours: intOrNull(remind) }));

  const chosen = () => [...channelBoxes.querySelectorAll("input[type=checkbox]:checked")].map((c) => Number(c.value));
  const syncBoxes = () => {
    for (const c of channelBoxes.querySelectorAll("input[type=checkbox]")) c.disabled = allChannels.checked;
  };
  allChannels.addEventListener("change", () => {
    syncBoxes();
    save({ channels: allChannels.checked ? null : chosen() });
  });

  (async () => {
    let channels;
    try {
      channels = await request("GET", "/channels");
    } catch {
      channelBoxes.replaceChildren(h("p", { class: "muted" }, t("alerts.channelsUnavailable")));
      return;
    }
    const own = new Set(r.channels || []);
    if (!Array.isArray(channels) || channels.length === 0) {
      channelBoxes.replaceChildren(h("p", { class: "muted" }, t("alerts.noChannels"), " ", h("a", { href: "#/channels" }, t("alerts.addChannel"))));
      return;
    }
    channelBoxes.replaceChildren(
      ...channels.map((c) => {
        const box = h("input", { type: "checkbox", value: String(c.id), checked: own.has(c.id), "data-testid": `alert-channel-${c.id}` });
        box.addEventListener("change", () => save({ channels: chosen() }));
        return h("label", { class: "check" }, box, " ", `${c.name} (${c.kind})`);
      })
    );
    syncBoxes();
  })();

  return h("div", { class: "panel", "data-testid": "alert-settings-panel" }, h("h2", null, t("alerts.title")), form);
}
