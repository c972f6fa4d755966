// Small DOM helpers shared by the views.
import { t, getLang } from "./i18n.js";

/**
 * h("button", { class: "primary", onclick: fn, "data-testid": "x" }, "Text", child…)
 * Attributes with null/undefined/false are skipped; `true` sets an empty attribute.
 * `value`, `checked`, `disabled`, `hidden` are set as properties.
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") el.className = value;
      else if (key === "text") el.textContent = value;
      else if (key === "dataset") Object.assign(el.dataset, value);
      else if (key === "style" && typeof value === "object") Object.assign(el.style, value);
      else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
      else if (key === "value" || key === "checked" || key === "disabled" || key === "hidden") el[key] = value;
      else if (value === true) el.setAttribute(key, "");
      else el.setAttribute(key, String(value));
    }
  }
  appendChildren(el, children);
  return el;
}

function appendChildren(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) appendChildren(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

/** An inline SVG icon from a path string (24×24 view box, stroked). */
export function icon(d, { size = 18, label } = {}) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("width", String(size));
  svg.setAttribute("height", String(size));
  svg.setAttribute("fill", "none");
  svg.setAttribute("stroke", "currentColor");
  svg.setAttribute("stroke-width", "2");
  svg.setAttribute("stroke-linecap", "round");
  svg.setAttribute("stroke-linejoin", "round");
  svg.setAttribute("class", "icon");
  if (label) {
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", label);
  } else {
    svg.setAttribute("aria-hidden", "true");
  }
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", d);
  svg.appendChild(path);
  return svg;
}

export const ICONS = {
  grip: "M9 5h.01M9 12h.01M9 19h.01M15 5h.01M15 12h.01M15 19h.01",
  trash: "M3 6h18M8 6V4h8v2M19 6l-1 14H6L5 6M10 11v6M14 11v6",
  close: "M18 6 6 18M6 6l12 12",
  plus: "M12 5v14M5 12h14",
  check: "M20 6 9 17l-5-5",
  link: "M10 13a5 5 0 0 0 7.5.5l3-3a5 5 0 0 0-7-7l-1.7 1.7M14 11a5 5 0 0 0-7.5-.5l-3 3a5 5 0 0 0 7 7l1.7-1.7",
  upload: "M12 16V4M7 9l5-5 5 5M4 20h16",
  download: "M12 4v12M7 11l5 5 5-5M4 20h16",
  refresh: "M21 12a9 9 0 1 1-3-6.7L21 8M21 3v5h-5",
  camera: "M4 8h3l2-3h6l2 3h3v11H4zM12 17a4 4 0 1 0 0-8 4 4 0 0 0 0 8z",
  pause: "M8 5v14M16 5v14",
  play: "M7 5l12 7-12 7z",
  board: "M4 4h6v16H4zM14 4h6v10h-6z",
  globe: "M12 3a9 9 0 1 0 0 18 9 9 0 0 0 0-18zM3 12h18M12 3c2.5 2.7 3.8 5.7 3.8 9s-1.3 6.3-3.8 9c-2.5-2.7-3.8-5.7-3.8-9s1.3-6.3 3.8-9z",
  feed: "M4 11a9 9 0 0 1 9 9M4 4a16 16 0 0 1 16 16M5 19h.01",
  terminal: "M4 17l6-5-6-5M12 19h8",
};

// ---------------------------------------------------------------- toasts

/** Show a transient message. kind: info | success | error. action: {label, onClick}. */
export function toast(message, { kind = "info", action = null, timeout } = {}) {
  const region = document.getElementById("toasts");
  if (!region) return () => {};
  const close = () => {
    el.classList.add("leaving");
    setTimeout(() => el.remove(), 200);
  };
  const el = h(
    "div",
    { class: `toast toast-${kind}`, "data-testid": "toast", "data-kind": kind, role: kind === "error" ? "alert" : "status" },
    h("span", { class: "toast-text" }, message),
    action
      ? h(
          "button",
          {
            type: "button",
            class: "link-button",
            onclick: () => {
              close();
              action.onClick();
            },
          },
          action.label
        )
      : null,
    h("button", { type: "button", class: "icon-button toast-close", "aria-label": t("common.dismiss"), onclick: close }, icon(ICONS.close, { size: 16 }))
  );
  region.appendChild(el);
  const ms = timeout ?? (kind === "error" ? 8000 : 4000);
  if (ms > 0) setTimeout(close, ms);
  return close;
}

// ---------------------------------------------------------------- forms

export function clearFormErrors(form) {
  for (const el of form.querySelectorAll("[data-error-for]")) {
    el.textContent = "";
    el.hidden = true;
  }
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  const general = form.querySelector(".form-error");
  if (general) {
    general.textContent = "";
    general.hidden = true;
  }
}

export function showFieldError(form, name, message) {
  const slot = form.querySelector(`[data-error-for="${name}"]`);
  const input = form.elements.namedItem(name);
  if (!slot) return false;
  slot.textContent = message;
  slot.hidden = false;
  if (input && input.setAttribute) input.setAttribute("aria-invalid", "true");
  return true;
}

export function showFormError(form, message) {
  const general = form.querySelector(".form-error");
  if (!general) return;
  general.textContent = message;
  general.hidden = false;
}

/** Focus the first invalid control of a form. */
export function focusFirstInvalid(form) {
  const el = form.querySelector('[aria-invalid="true"]');
  if (el) el.focus();
}

/** A user-facing message for an ApiError (or any error). */
export function errorMessage(err, fallbackKey = "err.generic") {
  if (!err) return t(fallbackKey);
  if (err.status === 0) return t("err.network");
  if (err.status === 429) {
    return err.retryAfter ? t("err.throttledFor", { seconds: err.retryAfter }) : t("err.throttled");
  }
  if (err.status >= 500) return t("err.server");
  if (err.serverMessage) return err.serverMessage;
  return t(fallbackKey);
}

// ---------------------------------------------------------------- misc

export function setBusy(button, busy) {
  if (!button) return;
  button.disabled = busy;
  button.classList.toggle("busy", busy);
  if (busy) button.setAttribute("aria-busy", "true");
  else button.removeAttribute("aria-busy");
}

export function formatDateTime(value, opts = { dateStyle: "medium", timeStyle: "short" }) {
  if (!value) return "";
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return String(value);
  try {
    return new Intl.DateTimeFormat(getLang(), opts).format(d);
  } catch {
    return d.toLocaleString();
  }
}

export function formatRelative(value) {
  if (!value) return "";
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return String(value);
  const diff = (d.getTime() - Date.now()) / 1000;
  const abs = Math.abs(diff);
  const rtf = new Intl.RelativeTimeFormat(getLang(), { numeric: "auto" });
  if (abs < 60) return rtf.format(Math.round(diff), "second");
  if (abs < 3600) return rtf.format(Math.round(diff / 60), "minute");
  if (abs < 86400) return rtf.format(Math.round(diff / 3600), "hour");
  if (abs < 86400 * 30) return rtf.format(Math.round(diff / 86400), "day");
  return formatDateTime(value, { dateStyle: "medium" });
}

/** Announce a message to screen readers through the polite live region. */
export function announce(message) {
  const region = document.getElementById("sr-announcer");
  if (!region) return;
  region.textContent = "";
  setTimeout(() => {
    region.textContent = message;
  }, 30);
}

/** Open a <dialog> modally and remember what to focus when it closes. */
export function openDialog(dialog, focusEl) {
  const opener = document.activeElement;
  dialog._opener = opener instanceof HTMLElement ? opener : null;
  if (!dialog.open) dialog.showModal();
  const target = focusEl || dialog.querySelector("[autofocus], input, textarea, select, button");
  if (target) target.focus();
}

/** Return focus to the element that opened a dialog, if it is still on the page. */
export function restoreFocus(dialog, fallback) {
  const el = dialog._opener;
  dialog._opener = null;
  if (el && el.isConnected && !el.closest("dialog:not([open])")) el.focus();
  else if (fallback && fallback.isConnected) fallback.focus();
}

/** A simple centred panel with a heading, a text and optional extra nodes. */
export function messagePanel(title, text, ...extra) {
  return h(
    "section",
    { class: "panel message-panel", "data-testid": "message-panel" },
    h("h1", null, title),
    text ? h("p", null, text) : null,
    ...extra
  );
}

/** Replace an element's children, skipping null/undefined/false entries. */
export function setChildren(el, ...children) {
  el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
}
