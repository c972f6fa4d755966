// Admin: the job queues (our Flower). Counts per queue and state, and the dead
// jobs with their last error, each with Retry and Discard. Refreshes itself.
//
// The payload of GET /admin/queues is read defensively: other queue backends may
// add fields (e.g. `backend`) or states, or leave some out.
import { request } from "./api.js";
import { t } from "./i18n.js";
import { h, icon, ICONS, toast, errorMessage, setBusy, formatDateTime, formatRelative, messagePanel, setChildren, announce } from "./dom.js";

const REFRESH_MS = 5000;
/** States in the order they are shown; any other numeric field follows, sorted. */
const KNOWN_STATES = ["queued", "running", "done", "dead"];

const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const isCount = (v) => typeof v === "number" && Number.isFinite(v);
const text = (v) => (v === null || v === undefined ? "" : typeof v === "string" ? v : typeof v === "number" || typeof v === "boolean" ? String(v) : JSON.stringify(v));

/** [{name, counts: {state: n}}] from `{queues: {name: {state: n}}}` or an array of queues. */
export function normalizeQueues(data) {
  const raw = data && data.queues;
  const out = [];
  if (Array.isArray(raw)) {
    for (const q of raw) {
      if (!isObject(q)) continue;
      const name = text(q.name ?? q.queue ?? "");
      const source = isObject(q.counts) ? q.counts : q;
      out.push({ name, counts: numericFields(source, ["name", "queue"]) });
    }
  } else if (isObject(raw)) {
    for (const [name, value] of Object.entries(raw)) {
      if (isObject(value)) out.push({ name, counts: numericFields(isObject(value.counts) ? value.counts : value, []) });
      else if (isCount(value)) out.push({ name, counts: { queued: value } });
    }
  }
  // With a message broker (RabbitMQ), what waits there per queue: {broker: {messages: {queue: n}}}.
  const broker = data && isObject(data.broker) && isObject(data.broker.messages) ? data.broker.messages : null;
  if (broker) {
    for (const [name, n] of Object.entries(broker)) {
      if (!isCount(n)) continue;
      let q = out.find((x) => x.name === name);
      if (!q) out.push((q = { name, counts: {} }));
      q.counts.broker = n;
    }
  }
  out.sort((a, b) => a.name.localeCompare(b.name));
  return out;
}

function numericFields(obj, skip) {
  const counts = {};
  for (const [k, v] of Object.entries(obj)) if (!skip.includes(k) && isCount(v)) counts[k] = v;
  return counts;
}

function stateColumns(queues) {
  const extra = new Set();
  for (const q of queues) for (const k of Object.keys(q.counts)) if (!KNOWN_STATES.includes(k)) extra.add(k);
  return [...KNOWN_STATES, ...[...extra].sort()];
}

function stateLabel(state) {
  const key = `jobs.state.${state}`;
  const label = t(key);
  return label === key ? state.replace(/_/g, " ") : label;
}

/** The dead jobs, each with an id (kept as given: a number or a string). */
export function normalizeDead(data) {
  const raw = data && (Array.isArray(data.dead) ? data.dead : Array.isArray(data.dead_jobs) ? data.dead_jobs : []);
  return raw.filter((j) => isObject(j) && j.id !== undefined && j.id !== null && j.id !== "");
}

export function mountJobs(container) {
  let alive = true;
  let timer = null;
  let loading = false;
  let autoRefresh = true;
  let loadedOnce = false;
  let reloadWanted = false;
  // Bumped by Retry/Discard: a response requested before an action may still list its job.
  let actionEpoch = 0;
  const rows = new Map(); // job id → <tr>

  const updated = h("span", { class: "muted small", "data-testid": "jobs-updated" });
  const backendNote = h("span", { class: "chip", "data-testid": "jobs-backend", hidden: true });
  const refreshBtn = h("button", { type: "button", class: "button small", "data-testid": "jobs-refresh" }, icon(ICONS.refresh, { size: 16 }), h("span", null, t("jobs.refresh")));
  refreshBtn.addEventListener("click", () => load({ manual: true }));
  const autoBox = h("input", { type: "checkbox", id: "jobs-auto", checked: true, "data-testid": "jobs-auto" });
  autoBox.addEventListener("change", () => {
    autoRefresh = autoBox.checked;
    schedule();
  });

  const countsArea = h("div", { class: "jobs-counts", "data-testid": "jobs-counts" }, h("div", { class: "loading-inline", "aria-busy": "true" }, h("span", { class: "spinner", "aria-hidden": "true" }), t("common.loading")));
  const refreshError = h("div", { class: "inline-error", role: "alert", "data-testid": "jobs-error", hidden: true });
  const brokerNote = h("div", { class: "inline-error", role: "status", "data-testid": "jobs-broker-error", hidden: true });
  const deadHeading = h("h2", { id: "jobs-dead-title", tabindex: "-1" }, t("jobs.deadTitle"));
  const deadCount = h("span", { class: "count", "data-testid": "jobs-dead-count" }, "0");
  const deadBody = h("tbody", { "data-testid": "dead-rows" });
  const deadTable = h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "data-table jobs-table", "aria-labelledby": "jobs-dead-title", "data-testid": "dead-table" },
      h(
        "thead",
        null,
        h(
          "tr",
          null,
          h("th", { scope: "col", class: "num" }, t("jobs.colId")),
          h("th", { scope: "col" }, t("jobs.colQueue")),
          h("th", { scope: "col" }, t("jobs.colKind")),
          h("th", { scope: "col", class: "num" }, t("jobs.colAttempts")),
          h("th", { scope: "col" }, t("jobs.colError")),
          h("th", { scope: "col" }, t("jobs.colFailed")),
          h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, t("common.actions")))
        )
      ),
      deadBody
    )
  );
  const deadEmpty = h("p", { class: "empty-inline", "data-testid": "dead-empty" }, t("jobs.deadEmpty"));
  const deadLimitNote = h("p", { class: "muted small", hidden: true }, t("jobs.deadLimited"));

  const page = h(
    "section",
    { class: "jobs", "data-testid": "jobs-page" },
    h(
      "div",
      { class: "page-head with-actions" },
      h("div", null, h("h1", null, t("jobs.title")), h("p", { class: "subtitle" }, t("jobs.subtitle"), " ", backendNote)),
      h("div", { class: "jobs-controls" }, h("label", { class: "checkbox-row compact", for: "jobs-auto" }, autoBox, h("span", null, t("jobs.autoRefresh"))), refreshBtn, updated)
    ),
    refreshError,
    brokerNote,
    h("div", { class: "panel" }, h("h2", { id: "jobs-counts-title" }, t("jobs.countsTitle")), countsArea),
    h("div", { class: "panel" }, h("div", { class: "panel-head" }, deadHeading, deadCount), h("p", { class: "muted small" }, t("jobs.deadHint")), deadTable, deadEmpty, deadLimitNote)
  );
  container.appendChild(page);
  deadTable.hidden = true;
  deadEmpty.hidden = true;

  function schedule() {
    clearTimeout(timer);
    if (alive && autoRefresh) timer = setTimeout(() => load(), REFRESH_MS);
  }

  async function load({ manual = false } = {}) {
    clearTimeout(timer);
    if (!alive) return;
    // Don't poll a hidden tab; look again when it is shown.
    if (!manual && document.visibilityState === "hidden" && loadedOnce) {
      schedule();
      return;
    }
    if (loading) {
      reloadWanted = true;
      return;
    }
    loading = true;
    const epoch = actionEpoch;
    if (manual) setBusy(refreshBtn, true);
    try {
      const data = await request("GET", "/admin/queues");
      if (!alive) return;
      if (epoch !== actionEpoch) {
        reloadWanted = true;
        return;
      }
      loadedOnce = true;
      refreshError.hidden = true;
      render(data || {});
      updated.textContent = t("jobs.updatedAt", { time: formatDateTime(new Date().toISOString(), { hour: "2-digit", minute: "2-digit", second: "2-digit" }) });
    } catch (err) {
      if (!alive) return;
      if (err.status === 403) {
        setChildren(page, messagePanel(t("logs.adminOnly"), t("jobs.adminOnlyHint")));
        alive = false;
        return;
      }
      if (err.status === 404 || err.status === 405) {
        setChildren(page, h("div", { class: "page-head" }, h("h1", null, t("jobs.title"))), messagePanel(t("watch.notAvailable", { feature: t("jobs.title") }), t("watch.notAvailableText")));
        alive = false;
        return;
      }
      // Keep what is shown and try again on the next tick.
      refreshError.textContent = `${t("jobs.loadFailed")} ${errorMessage(err)}`;
      refreshError.hidden = false;
    } finally {
      loading = false;
      if (manual) setBusy(refreshBtn, false);
      if (alive && reloadWanted) {
        reloadWanted = false;
        load();
      } else {
        schedule();
      }
    }
  }

  function render(data) {
    const backend = typeof data.backend === "string" ? data.backend : isObject(data.backend) && typeof data.backend.name === "string" ? data.backend.name : "";
    backendNote.hidden = !backend;
    backendNote.textContent = backend ? t("jobs.backend", { backend }) : "";
    const broker = isObject(data.broker) ? data.broker : null;
    brokerNote.hidden = !(broker && broker.connected === false);
    brokerNote.textContent = brokerNote.hidden ? "" : `${t("jobs.brokerDown")}${broker.error ? ` ${text(broker.error)}` : ""}`;
    renderCounts(normalizeQueues(data));
    renderDead(normalizeDead(data));
  }

  function renderCounts(queues) {
    if (!queues.length) {
      setChildren(countsArea, h("p", { class: "empty-inline", "data-testid": "counts-empty" }, t("jobs.noQueues")));
      return;
    }
    const states = stateColumns(queues);
    const totals = {};
    for (const q of queues) for (const s of states) if (isCount(q.counts[s])) totals[s] = (totals[s] || 0) + q.counts[s];
    const cell = (state, value, attrs = {}) => {
      const n = isCount(value) ? value : null;
      const content = n === null ? "—" : state === "dead" && n > 0 ? h("span", { class: "badge bad" }, String(n)) : String(n);
      return h("td", { class: "num", "data-label": stateLabel(state), "data-state": state, ...attrs }, content);
    };
    setChildren(
      countsArea,
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "data-table counts-table", "aria-labelledby": "jobs-counts-title", "data-testid": "counts-table" },
          h("thead", null, h("tr", null, h("th", { scope: "col" }, t("jobs.colQueue")), states.map((s) => h("th", { scope: "col", class: "num" }, stateLabel(s))))),
          h(
            "tbody",
            null,
            queues.map((q) => h("tr", { "data-testid": "queue-row", "data-queue": q.name }, h("th", { scope: "row", class: "queue-name" }, q.name || "—"), states.map((s) => cell(s, q.counts[s]))))
          ),
          queues.length > 1 ? h("tfoot", null, h("tr", { "data-testid": "queue-total" }, h("th", { scope: "row", class: "queue-name" }, t("jobs.total")), states.map((s) => cell(s, totals[s])))) : null
        )
      )
    );
  }

  function renderDead(jobs) {
    deadCount.textContent = String(jobs.length);
    deadTable.hidden = jobs.length === 0;
    deadEmpty.hidden = jobs.length > 0;
    deadLimitNote.hidden = jobs.length < 100;
    const keep = new Set();
    let cursor = deadBody.firstChild;
    for (const job of jobs) {
      const key = String(job.id);
      keep.add(key);
      const sig = signature(job);
      let row = rows.get(key);
      // Rebuild a row whose job changed, unless the admin is acting on it right now.
      if (row && row.dataset.sig !== sig && !row.dataset.busy && !row.dataset.confirming) {
        const fresh = deadRow(job, sig);
        row.replaceWith(fresh);
        if (cursor === row) cursor = fresh;
        row = fresh;
        rows.set(key, row);
      }
      if (!row) {
        row = deadRow(job, sig);
        rows.set(key, row);
      }
      if (row === cursor) cursor = cursor.nextSibling;
      else deadBody.insertBefore(row, cursor);
    }
    for (const [key, row] of rows) {
      if (!keep.has(key) && !row.dataset.busy) {
        row.remove();
        rows.delete(key);
      }
    }
  }

  function signature(job) {
    return JSON.stringify([job.attempts, job.last_error, job.updated_at, job.queue, job.kind]);
  }

  function deadRow(job, sig) {
    const id = String(job.id);
    const failedAt = job.updated_at || job.failed_at || job.finished_at || null;
    const attempts = isCount(job.attempts) ? (isCount(job.max_attempts) ? `${job.attempts} / ${job.max_attempts}` : String(job.attempts)) : "—";
    const err = text(job.last_error).trim();
    const firstLine = err.split("\n")[0];
    const long = err.length > 160 || err.includes("\n");
    const payload = job.payload !== undefined && job.payload !== null ? JSON.stringify(job.payload, null, 2) : "";
    const errorCell = h(
      "td",
      { class: "job-error", "data-label": t("jobs.colError"), "data-testid": "dead-error" },
      err ? (long ? h("span", { class: "error-text" }, `${firstLine.slice(0, 160)}…`) : h("span", { class: "error-text" }, err)) : h("span", { class: "muted" }, t("jobs.noError")),
      long || payload
        ? h(
            "details",
            { class: "job-details" },
            h("summary", null, t("jobs.details")),
            long ? h("pre", { class: "job-pre" }, err) : null,
            payload ? h("p", { class: "muted small" }, t("jobs.payload")) : null,
            payload ? h("pre", { class: "job-pre" }, payload) : null,
            job.created_at ? h("p", { class: "muted small" }, t("jobs.createdAt", { time: formatDateTime(job.created_at) })) : null
          )
        : null
    );

    const retryBtn = h("button", { type: "button", class: "button small", "data-testid": "dead-retry", "aria-label": t("jobs.retryLabel", { id }) }, icon(ICONS.refresh, { size: 16 }), h("span", null, t("jobs.retry")));
    const discardBtn = h("button", { type: "button", class: "button small danger-outline", "data-testid": "dead-discard", "aria-label": t("jobs.discardLabel", { id }) }, icon(ICONS.trash, { size: 16 }), h("span", null, t("jobs.discard")));
    const confirmYes = h("button", { type: "button", class: "button small danger", "data-testid": "dead-discard-confirm" }, t("jobs.discardYes"));
    const confirmNo = h("button", { type: "button", class: "button small", "data-testid": "dead-discard-cancel" }, t("common.cancel"));
    const confirmBox = h("span", { class: "job-confirm", role: "group", "aria-label": t("jobs.discardConfirm", { id }), hidden: true }, h("span", null, t("jobs.discardConfirm", { id })), confirmYes, confirmNo);
    const actions = h("div", { class: "job-actions" }, retryBtn, discardBtn);

    const row = h(
      "tr",
      { "data-testid": "dead-row", "data-id": id, "data-kind": text(job.kind) },
      h("td", { class: "num", "data-label": t("jobs.colId") }, `#${id}`),
      h("td", { "data-label": t("jobs.colQueue") }, job.queue ? h("span", { class: "chip" }, text(job.queue)) : "—"),
      h("td", { "data-label": t("jobs.colKind"), class: "job-kind", "data-testid": "dead-kind" }, text(job.kind) || "—"),
      h("td", { class: "num", "data-label": t("jobs.colAttempts"), "data-testid": "dead-attempts" }, attempts),
      errorCell,
      h("td", { "data-label": t("jobs.colFailed") }, failedAt ? h("time", { datetime: text(failedAt), title: formatDateTime(failedAt) }, formatRelative(failedAt)) : "—"),
      h("td", { class: "actions" }, actions, confirmBox)
    );
    row.dataset.sig = sig;

    const busy = (on) => {
      if (on) row.dataset.busy = "true";
      else delete row.dataset.busy;
    };

    retryBtn.addEventListener("click", async () => {
      busy(true);
      setBusy(retryBtn, true);
      discardBtn.disabled = true;
      try {
        await request("POST", `/admin/jobs/${encodeURIComponent(id)}/retry`);
        toast(t("jobs.retried", { id }), { kind: "success" });
        announce(t("jobs.retried", { id }));
        dropRow(row, id);
      } catch (err) {
        if (err.status === 404) {
          toast(t("jobs.gone", { id }), { kind: "info" });
          dropRow(row, id);
        } else {
          toast(errorMessage(err), { kind: "error" });
        }
      } finally {
        busy(false);
        setBusy(retryBtn, false);
        discardBtn.disabled = false;
        load();
      }
    });

    discardBtn.addEventListener("click", () => {
      row.dataset.confirming = "true";
      actions.hidden = true;
      confirmBox.hidden = false;
      confirmNo.focus();
    });
    confirmNo.addEventListener("click", () => {
      delete row.dataset.confirming;
      confirmBox.hidden = true;
      actions.hidden = false;
      discardBtn.focus();
    });
    confirmYes.addEventListener("click", async () => {
      busy(true);
      setBusy(confirmYes, true);
      confirmNo.disabled = true;
      try {
        await request("DELETE", `/admin/jobs/${encodeURIComponent(id)}`);
        toast(t("jobs.discarded", { id }), { kind: "success" });
        announce(t("jobs.discarded", { id }));
        dropRow(row, id);
      } catch (err) {
        if (err.status === 404) {
          toast(t("jobs.gone", { id }), { kind: "info" });
          dropRow(row, id);
        } else {
          toast(errorMessage(err), { kind: "error" });
        }
      } finally {
        busy(false);
        delete row.dataset.confirming;
        setBusy(confirmYes, false);
        confirmNo.disabled = false;
        if (row.isConnected) {
          confirmBox.hidden = true;
          actions.hidden = false;
        }
        load();
      }
    });
    return row;
  }

  /** Remove a handled row and put focus somewhere sensible. */
  function dropRow(row, id) {
    actionEpoch++;
    const hadFocus = row.contains(document.activeElement);
    const next = row.nextElementSibling || row.previousElementSibling;
    row.remove();
    rows.delete(id);
    const left = deadBody.children.length;
    deadCount.textContent = String(left);
    deadTable.hidden = left === 0;
    deadEmpty.hidden = left > 0;
    if (hadFocus) {
      const target = next && next.querySelector('[data-testid="dead-retry"]');
      (target || deadHeading).focus();
    }
  }

  const onVisible = () => {
    if (document.visibilityState === "visible" && alive && autoRefresh) load();
  };
  document.addEventListener("visibilitychange", onVisible);

  load();
  return () => {
    alive = false;
    clearTimeout(timer);
    document.removeEventListener("visibilitychange", onVisible);
  };
}
