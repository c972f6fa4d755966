// Admin: live application logs over a WebSocket, with level filter, pause and PDF export.
import { request, apiUrl, wsUrl, refreshSession } from "./api.js";
import { t } from "./i18n.js";
import { h, icon, ICONS, errorMessage, formatDateTime, messagePanel, setChildren } from "./dom.js";

const MAX_LINES = 2000;
const LEVELS = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"];

function normLevel(level) {
  const l = String(level || "INFO").toUpperCase();
  if (l === "WARNING") return "WARN";
  if (l === "CRITICAL" || l === "FATAL") return "ERROR";
  return LEVELS.includes(l) ? l : "INFO";
}

/** Turn whatever the server sends (object, array, {logs}, plain text) into lines. */
function toLines(payload) {
  if (payload === null || payload === undefined) return [];
  if (typeof payload === "string") {
    const text = payload.trim();
    if (!text) return [];
    if (text.startsWith("{") || text.startsWith("[")) {
      try {
        return toLines(JSON.parse(text));
      } catch {
        /* plain text */
      }
    }
    return text.split("\n").map((raw) => {
      const m = raw.match(/\b(TRACE|DEBUG|INFO|WARN|WARNING|ERROR)\b/i);
      const ts = raw.match(/^\S*\d{4}-\d{2}-\d{2}[T ][\d:.]+\S*/);
      return { timestamp: ts ? ts[0] : null, level: normLevel(m ? m[1] : "INFO"), message: raw };
    });
  }
  if (Array.isArray(payload)) return payload.flatMap(toLines);
  if (Array.isArray(payload.logs)) return payload.logs.flatMap(toLines);
  if (Array.isArray(payload.lines)) return payload.lines.flatMap(toLines);
  const fields = payload.fields && typeof payload.fields === "object" ? payload.fields : {};
  return [
    {
      timestamp: payload.timestamp || payload.time || payload.ts || null,
      level: normLevel(payload.level),
      message: String(payload.message ?? fields.message ?? payload.msg ?? payload.line ?? JSON.stringify(payload)),
      target: payload.target || null,
    },
  ];
}

export function mountLogs(container) {
  let alive = true;
  let ws = null;
  let reconnectTimer = null;
  let attempts = 0;
  let paused = false;
  let held = [];
  const lines = [];
  let minLevel = localStorage.getItem("pulseboard.logLevel") || "TRACE";
  if (!LEVELS.includes(minLevel)) minLevel = "TRACE";
  let search = "";

  const levelSelect = h(
    "select",
    { id: "log-level", "data-testid": "log-level" },
    LEVELS.map((l) => h("option", { value: l }, l === "TRACE" ? t("logs.allLevels") : t("logs.levelAndAbove", { level: l })))
  );
  levelSelect.value = minLevel;
  levelSelect.addEventListener("change", () => {
    minLevel = levelSelect.value;
    localStorage.setItem("pulseboard.logLevel", minLevel);
    renderAll();
  });
  const searchInput = h("input", { id: "log-search", type: "search", placeholder: t("logs.searchPlaceholder"), "data-testid": "log-search" });
  searchInput.addEventListener("input", () => {
    search = searchInput.value.trim().toLowerCase();
    renderAll();
  });
  const pauseBtn = h("button", { type: "button", class: "button", "aria-pressed": "false", "data-testid": "log-pause" });
  pauseBtn.addEventListener("click", () => {
    paused = !paused;
    if (!paused && held.length) {
      const batch = held;
      held = [];
      addLines(batch);
    }
    renderPause();
  });
  const clearBtn = h("button", { type: "button", class: "button", "data-testid": "log-clear" }, t("logs.clear"));
  clearBtn.addEventListener("click", () => {
    lines.length = 0;
    held = [];
    renderAll();
    renderPause();
  });
  const pdfLink = h(
    "a",
    { class: "button", href: apiUrl("/logs.pdf"), download: "pulseboard-logs.pdf", target: "_blank", rel: "noopener", "data-testid": "log-pdf" },
    icon(ICONS.download, { size: 16 }),
    h("span", null, t("logs.pdf"))
  );
  const conn = h("span", { class: "conn", "data-state": "connecting", "data-testid": "log-connection", role: "status" });
  // The scrolling box is the log region (focusable, so it can be scrolled with the keyboard);
  // the lines inside stay a list.
  const output = h("ol", { class: "log-lines", "data-testid": "log-lines" });
  const emptyNote = h("p", { class: "muted log-empty", "data-testid": "log-empty" }, t("logs.empty"));

  const page = h(
    "section",
    { class: "logs", "data-testid": "logs-page" },
    h("div", { class: "page-head with-actions" }, h("div", null, h("h1", null, t("logs.title")), h("p", { class: "subtitle" }, t("logs.subtitle"))), conn),
    h(
      "div",
      { class: "panel" },
      h(
        "div",
        { class: "log-toolbar" },
        h("div", { class: "filter" }, h("label", { for: "log-level" }, t("logs.level")), levelSelect),
        h("div", { class: "filter grow" }, h("label", { for: "log-search" }, t("logs.search")), searchInput),
        h("div", { class: "filter filter-actions" }, pauseBtn, clearBtn, pdfLink)
      ),
      h("div", { class: "log-scroll", role: "log", "aria-live": "off", "aria-label": t("logs.title"), tabindex: "0", "data-testid": "log-scroll" }, output, emptyNote)
    )
  );
  container.appendChild(page);
  renderPause();
  setConn("connecting");

  function visible(line) {
    if (LEVELS.indexOf(line.level) < LEVELS.indexOf(minLevel)) return false;
    if (search && !`${line.message} ${line.target || ""}`.toLowerCase().includes(search)) return false;
    return true;
  }

  function lineEl(line) {
    return h(
      "li",
      { class: `log-line lvl-${line.level.toLowerCase()}`, "data-level": line.level, "data-testid": "log-line" },
      h("time", { class: "log-time", datetime: line.timestamp || "" }, line.timestamp ? formatDateTime(line.timestamp, { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false }) || line.timestamp : ""),
      h("span", { class: "log-level" }, line.level),
      h("span", { class: "log-msg" }, line.target ? h("span", { class: "log-target" }, `${line.target} `) : null, line.message)
    );
  }

  function atBottom() {
    const box = output.parentElement;
    return box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  }

  function scrollToBottom() {
    const box = output.parentElement;
    box.scrollTop = box.scrollHeight;
  }

  function renderAll() {
    setChildren(output, ...lines.filter(visible).map(lineEl));
    emptyNote.hidden = output.children.length > 0;
    scrollToBottom();
  }

  function addLines(newLines) {
    if (!newLines.length) return;
    if (paused) {
      held.push(...newLines);
      if (held.length > MAX_LINES) held.splice(0, held.length - MAX_LINES);
      renderPause();
      return;
    }
    const stick = atBottom();
    lines.push(...newLines);
    const overflow = lines.length - MAX_LINES;
    if (overflow > 0) {
      lines.splice(0, overflow);
      renderAll();
      return;
    }
    for (const line of newLines) if (visible(line)) output.appendChild(lineEl(line));
    emptyNote.hidden = output.children.length > 0;
    if (stick) scrollToBottom();
  }

  function renderPause() {
    pauseBtn.setAttribute("aria-pressed", paused ? "true" : "false");
    setChildren(pauseBtn, icon(paused ? ICONS.play : ICONS.pause, { size: 16 }), h("span", null, paused ? (held.length ? t("logs.resumeWith", { count: held.length }) : t("logs.resume")) : t("logs.pause")));
  }

  function setConn(state) {
    conn.dataset.state = state;
    conn.textContent = t(`logs.conn.${state}`);
  }

  function connect() {
    if (!alive) return;
    setConn("connecting");
    try {
      ws = new WebSocket(wsUrl("/logs/stream"));
    } catch {
      scheduleReconnect();
      return;
    }
    let opened = false;
    ws.addEventListener("open", () => {
      opened = true;
      attempts = 0;
      setConn("live");
    });
    ws.addEventListener("message", (e) => {
      if (typeof e.data === "string") addLines(toLines(e.data));
    });
    ws.addEventListener("close", async () => {
      ws = null;
      if (!alive) return;
      // A handshake refused before opening may be an expired access token.
      if (!opened && attempts === 1) await refreshSession();
      scheduleReconnect();
    });
  }

  function scheduleReconnect() {
    if (!alive) return;
    attempts++;
    setConn(attempts > 3 ? "offline" : "reconnecting");
    const delay = Math.min(30000, 1000 * 2 ** Math.min(attempts - 1, 5));
    reconnectTimer = setTimeout(connect, delay);
  }

  (async () => {
    try {
      const data = await request("GET", "/logs?lines=200");
      if (!alive) return;
      addLines(toLines(data));
      emptyNote.hidden = output.children.length > 0;
      connect();
    } catch (err) {
      if (!alive) return;
      if (err.status === 404 || err.status === 405) {
        setChildren(page, h("div", { class: "page-head" }, h("h1", null, t("logs.title"))), messagePanel(t("watch.notAvailable", { feature: t("logs.title") }), t("watch.notAvailableText")));
        return;
      }
      if (err.status === 403) {
        setChildren(page, messagePanel(t("logs.adminOnly"), t("logs.adminOnlyHint")));
        return;
      }
      output.replaceChildren();
      emptyNote.textContent = `${t("logs.loadFailed")} ${errorMessage(err)}`;
      emptyNote.hidden = false;
      connect();
    }
  })();

  return () => {
    alive = false;
    clearTimeout(reconnectTimer);
    if (ws) {
      try {
        ws.close(1000);
      } catch {
        /* ignore */
      }
    }
  };
}
