// Watch: the resource catalogue, a resource's page and the news feed.
import { request, upload, apiUrl } from "./api.js";
import { t } from "./i18n.js";
import { alertSettingsPanel } from "./alert_settings.js";
import {
  h,
  icon,
  ICONS,
  toast,
  errorMessage,
  setBusy,
  formatDateTime,
  formatRelative,
  messagePanel,
  setChildren,
  clearFormErrors,
  showFieldError,
  showFormError,
} from "./dom.js";

const IMPORT_KEY = "pulseboard.importRequest";
const CAPTURE_POLL_MS = 1500;
const CAPTURE_WAIT_MS = 30000;
const PER_PAGE_CHOICES = [10, 25, 50, 100];

function notAvailable(feature) {
  return messagePanel(t("watch.notAvailable", { feature }), t("watch.notAvailableText"));
}

function loadingBlock() {
  return h("div", { class: "loading-inline", "aria-busy": "true" }, h("span", { class: "spinner", "aria-hidden": "true" }), t("common.loading"));
}

function errorBlock(err, retry) {
  return h(
    "div",
    { class: "inline-error", role: "alert", "data-testid": "load-error" },
    h("span", null, errorMessage(err)),
    retry ? h("button", { type: "button", class: "button small", onclick: retry }, t("common.retry")) : null
  );
}

function buildHash(path, params) {
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") qs.set(k, String(v));
  const s = qs.toString();
  return `#${path}${s ? `?${s}` : ""}`;
}

function positiveInt(value, fallback) {
  const n = Number.parseInt(value, 10);
  return Number.isFinite(n) && n > 0 ? n : fallback;
}

function pager({ page, totalPages, totalItems, hashFor, testid = "pager" }) {
  if (!totalPages || totalPages <= 1) {
    return totalItems !== undefined ? h("p", { class: "pager-info", "data-testid": `${testid}-info` }, t("pager.total", { count: totalItems })) : null;
  }
  const prev = page > 1 ? h("a", { class: "button small", href: hashFor(page - 1), rel: "prev", "data-testid": `${testid}-prev` }, `← ${t("pager.prev")}`) : h("span", { class: "button small", "aria-disabled": "true" }, `← ${t("pager.prev")}`);
  const next = page < totalPages ? h("a", { class: "button small", href: hashFor(page + 1), rel: "next", "data-testid": `${testid}-next` }, `${t("pager.next")} →`) : h("span", { class: "button small", "aria-disabled": "true" }, `${t("pager.next")} →`);
  return h(
    "nav",
    { class: "pager", "aria-label": t("pager.label"), "data-testid": testid },
    prev,
    h("span", { class: "pager-info", "aria-current": "page" }, t("pager.pageOf", { page, total: totalPages }), totalItems !== undefined ? ` · ${t("pager.total", { count: totalItems })}` : ""),
    next
  );
}

function statusBadge(resource) {
  const avail = resource.is_available;
  if (avail === true) return h("span", { class: "badge ok", "data-testid": "status-badge" }, t("resources.up"));
  if (avail === false) return h("span", { class: "badge bad", "data-testid": "status-badge" }, t("resources.down"));
  return h("span", { class: "badge muted", "data-testid": "status-badge" }, t("resources.unchecked"));
}

function hostOf(url) {
  try {
    return new URL(url).host;
  } catch {
    return url || "";
  }
}

// ================================================================= resources list

export function mountResources(container, ctx) {
  const params = ctx.params;
  const filters = {
    availability: ["true", "false"].includes(params.get("availability")) ? params.get("availability") : "",
    domain_zone: (params.get("domain_zone") || "").trim(),
    page: positiveInt(params.get("page"), 1),
    per_page: positiveInt(params.get("per_page"), 10),
  };
  const hashFor = (over) => {
    const p = { ...filters, ...over };
    return buildHash("/resources", {
      availability: p.availability,
      domain_zone: p.domain_zone,
      page: p.page === 1 ? "" : p.page,
      per_page: p.per_page === 10 ? "" : p.per_page,
    });
  };

  let alive = true;
  let pollTimer = null;
  const listArea = h("div", { class: "resource-results", "data-testid": "resource-results" }, loadingBlock());

  // ---- add one URL
  const urlInput = h("input", { id: "resource-url", name: "url", type: "url", inputmode: "url", placeholder: "https://example.org", required: true, autocomplete: "off", "aria-describedby": "resource-url-error", "data-testid": "resource-url-input" });
  const urlButton = h("button", { type: "submit", class: "button primary", "data-testid": "resource-add-button" }, icon(ICONS.plus), h("span", null, t("resources.add")));
  const urlForm = h(
    "form",
    { class: "card-form", novalidate: true, "data-testid": "resource-add-form" },
    h("h2", null, t("resources.addTitle")),
    h("div", { class: "form-error", role: "alert", hidden: true }),
    h("label", { for: "resource-url" }, t("resources.urlLabel")),
    h("div", { class: "inline-row" }, urlInput, urlButton),
    h("p", { class: "field-error", id: "resource-url-error", "data-error-for": "url", hidden: true })
  );
  urlForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearFormErrors(urlForm);
    const url = urlInput.value.trim();
    if (!/^https?:\/\/[^\s/]+/i.test(url)) {
      showFieldError(urlForm, "url", t("resources.urlInvalid"));
      urlInput.focus();
      return;
    }
    setBusy(urlButton, true);
    try {
      const created = await request("POST", "/resources", { json: { url } });
      urlInput.value = "";
      toast(t("resources.added", { url: (created && created.full_url) || url }), { kind: "success" });
      loadList();
    } catch (err) {
      if (err.status === 404 || err.status === 405) showFormError(urlForm, t("watch.notAvailableText"));
      else if (err.details && err.details.url) showFieldError(urlForm, "url", String(err.details.url));
      else if (err.status === 409) showFieldError(urlForm, "url", err.serverMessage || t("resources.duplicate"));
      else showFieldError(urlForm, "url", errorMessage(err));
      urlInput.focus();
    } finally {
      setBusy(urlButton, false);
    }
  });

  // ---- upload a ZIP
  const fileInput = h("input", { id: "resource-zip", name: "file", type: "file", accept: ".zip,application/zip,application/x-zip-compressed", required: true, "data-testid": "resource-zip-input" });
  const uploadButton = h("button", { type: "submit", class: "button", "data-testid": "resource-upload-button" }, icon(ICONS.upload), h("span", null, t("resources.upload")));
  const progress = h("progress", { max: 100, value: 0, class: "upload-progress", "data-testid": "upload-progress", "aria-label": t("resources.uploadProgress"), hidden: true });
  const importStatus = h("div", { class: "import-status", "data-testid": "import-status", "aria-live": "polite" });
  const zipForm = h(
    "form",
    { class: "card-form", novalidate: true, "data-testid": "resource-upload-form" },
    h("h2", null, t("resources.importTitle")),
    h("p", { class: "field-hint" }, t("resources.importHint")),
    h("div", { class: "form-error", role: "alert", hidden: true }),
    h("label", { for: "resource-zip" }, t("resources.zipLabel")),
    h("div", { class: "inline-row" }, fileInput, uploadButton),
    h("p", { class: "field-error", "data-error-for": "file", hidden: true }),
    progress,
    importStatus
  );
  zipForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearFormErrors(zipForm);
    const file = fileInput.files && fileInput.files[0];
    if (!file) {
      showFieldError(zipForm, "file", t("resources.chooseZip"));
      return;
    }
    if (!/\.zip$/i.test(file.name)) {
      showFieldError(zipForm, "file", t("resources.notZip"));
      return;
    }
    const fd = new FormData();
    fd.append("file", file, file.name);
    setBusy(uploadButton, true);
    progress.hidden = false;
    progress.value = 0;
    setChildren(importStatus, t("resources.uploading"));
    try {
      const res = await upload("/resources", fd, {
        onProgress: (fraction) => {
          if (fraction === null) progress.removeAttribute("value");
          else progress.value = Math.round(fraction * 100);
        },
      });
      progress.value = 100;
      fileInput.value = "";
      const requestId = res && (res.request_id ?? res.id);
      if (requestId !== undefined && requestId !== null) {
        sessionStorage.setItem(IMPORT_KEY, String(requestId));
        pollImport(String(requestId));
      } else {
        setChildren(importStatus, t("resources.uploaded"));
        loadList();
      }
    } catch (err) {
      progress.hidden = true;
      importStatus.replaceChildren();
      if (err.status === 404 || err.status === 405) showFormError(zipForm, t("watch.notAvailableText"));
      else showFormError(zipForm, errorMessage(err));
    } finally {
      setBusy(uploadButton, false);
    }
  });

  async function pollImport(id) {
    clearTimeout(pollTimer);
    if (!alive) return;
    try {
      const st = await request("GET", `/processing-requests/${encodeURIComponent(id)}`);
      if (!alive) return;
      renderImport(st);
      if (st && (st.status === "pending" || st.status === "in_process")) {
        pollTimer = setTimeout(() => pollImport(id), 1000);
      } else {
        sessionStorage.removeItem(IMPORT_KEY);
        loadList();
      }
    } catch (err) {
      if (!alive) return;
      if (err.status === 404) {
        sessionStorage.removeItem(IMPORT_KEY);
        setChildren(importStatus, t("resources.importUnknown"));
        return;
      }
      setChildren(importStatus, errorBlock(err, () => pollImport(id)));
    }
  }

  function renderImport(st) {
    st = st || {};
    const total = Number(st.total) || 0;
    const processed = Number(st.processed) || 0;
    progress.hidden = false;
    if (total > 0) progress.value = Math.round((processed / total) * 100);
    const errors = st.errors || {};
    const errorUrls = Array.isArray(errors.error_urls) ? errors.error_urls : [];
    const statusKey = `import.${st.status}`;
    const statusText = t(statusKey) === statusKey ? String(st.status || "") : t(statusKey);
    importStatus.dataset.status = st.status || "";
    setChildren(importStatus, 
      h("p", null, h("strong", null, statusText), total ? ` — ${t("import.progress", { processed, total })}` : ""),
      h(
        "ul",
        { class: "import-counts" },
        h("li", null, t("import.created", { count: Number(st.created) || 0 })),
        h("li", null, t("import.duplicates", { count: Number(st.duplicates) || 0 })),
        h("li", null, t("import.errors", { count: Number(errors.count) || errorUrls.length }))
      ),
      errorUrls.length
        ? h(
            "details",
            null,
            h("summary", null, t("import.errorUrls")),
            h("ul", { class: "error-urls" }, errorUrls.slice(0, 200).map((u) => h("li", null, typeof u === "string" ? u : JSON.stringify(u))))
          )
        : null
    );
  }

  // ---- filters
  const availSelect = h(
    "select",
    { id: "filter-availability", name: "availability", "data-testid": "filter-availability" },
    h("option", { value: "" }, t("resources.filterAll")),
    h("option", { value: "true" }, t("resources.filterUp")),
    h("option", { value: "false" }, t("resources.filterDown"))
  );
  availSelect.value = filters.availability;
  const zoneInput = h("input", { id: "filter-zone", name: "domain_zone", type: "text", placeholder: "org", value: filters.domain_zone, size: 8, "data-testid": "filter-zone" });
  const perPageSelect = h("select", { id: "filter-per-page", name: "per_page", "data-testid": "filter-per-page" }, PER_PAGE_CHOICES.map((n) => h("option", { value: String(n) }, String(n))));
  perPageSelect.value = PER_PAGE_CHOICES.includes(filters.per_page) ? String(filters.per_page) : "10";
  const filterForm = h(
    "form",
    { class: "filters", role: "search", "data-testid": "resource-filters" },
    h("div", { class: "filter" }, h("label", { for: "filter-availability" }, t("resources.availability")), availSelect),
    h("div", { class: "filter" }, h("label", { for: "filter-zone" }, t("resources.domainZone")), zoneInput),
    h("div", { class: "filter" }, h("label", { for: "filter-per-page" }, t("resources.perPage")), perPageSelect),
    h("div", { class: "filter filter-actions" }, h("button", { type: "submit", class: "button" }, t("resources.apply")), h("a", { href: "#/resources", class: "link-button" }, t("resources.reset")))
  );
  const applyFilters = () => {
    ctx.navigate(
      buildHash("/resources", {
        availability: availSelect.value,
        domain_zone: zoneInput.value.trim().replace(/^\./, "").toLowerCase(),
        per_page: perPageSelect.value === "10" ? "" : perPageSelect.value,
      })
    );
  };
  filterForm.addEventListener("submit", (e) => {
    e.preventDefault();
    applyFilters();
  });
  availSelect.addEventListener("change", applyFilters);
  perPageSelect.addEventListener("change", applyFilters);

  const page = h(
    "section",
    { class: "resources", "data-testid": "resources-page" },
    h("div", { class: "page-head" }, h("h1", null, t("resources.title")), h("p", { class: "subtitle" }, t("resources.subtitle"))),
    h("div", { class: "two-up" }, h("div", { class: "panel" }, urlForm), h("div", { class: "panel" }, zipForm)),
    h("div", { class: "panel" }, filterForm, listArea)
  );
  container.appendChild(page);

  async function loadList() {
    const qs = new URLSearchParams();
    if (filters.availability) qs.set("availability", filters.availability);
    if (filters.domain_zone) qs.set("domain_zone", filters.domain_zone);
    qs.set("page", String(filters.page));
    qs.set("per_page", String(filters.per_page));
    try {
      const data = await request("GET", `/resources?${qs}`);
      if (!alive) return;
      renderList(data);
    } catch (err) {
      if (!alive) return;
      if (err.status === 404 || err.status === 405) {
        setChildren(page, h("div", { class: "page-head" }, h("h1", null, t("resources.title"))), notAvailable(t("resources.title")));
        return;
      }
      setChildren(listArea, errorBlock(err, loadList));
    }
  }

  function renderList(data) {
    const items = Array.isArray(data) ? data : (data && data.items) || [];
    const meta = (data && data.meta) || {};
    const totalPages = Number(meta.total_pages) || 1;
    const totalItems = meta.total_items !== undefined ? Number(meta.total_items) : items.length;
    if (!items.length) {
      const filtered = filters.availability || filters.domain_zone;
      setChildren(listArea, 
        h(
          "div",
          { class: "empty-inline", "data-testid": "resources-empty" },
          h("p", null, filtered ? t("resources.noMatch") : t("resources.empty")),
          filters.page > 1 && totalPages >= 1 ? h("a", { href: hashFor({ page: 1 }), class: "button small" }, t("pager.first")) : null
        )
      );
      return;
    }
    const rows = items.map((r) => resourceRow(r));
    setChildren(listArea, 
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "data-table", "data-testid": "resources-table" },
          h(
            "thead",
            null,
            h(
              "tr",
              null,
              h("th", { scope: "col" }, t("resources.colUrl")),
              h("th", { scope: "col" }, t("resources.colZone")),
              h("th", { scope: "col" }, t("resources.colStatus")),
              h("th", { scope: "col", class: "num" }, t("resources.colCode")),
              h("th", { scope: "col", class: "num" }, t("resources.colTime")),
              h("th", { scope: "col" }, t("resources.colChecked")),
              h("th", { scope: "col", class: "num" }, t("resources.colFails")),
              h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, t("common.actions")))
            )
          ),
          h("tbody", null, rows)
        )
      ),
      pager({ page: filters.page, totalPages, totalItems, hashFor: (p) => hashFor({ page: p }) })
    );
  }

  function resourceRow(r) {
    const id = r.uuid || r.id;
    const del = h("button", { type: "button", class: "icon-button danger-text", "aria-label": t("resources.deleteLabel", { url: r.full_url }), "data-testid": "resource-delete" }, icon(ICONS.trash, { size: 16 }));
    let armed = false;
    let disarm = null;
    del.addEventListener("click", async () => {
      if (!armed) {
        armed = true;
        del.classList.add("armed");
        del.setAttribute("aria-label", t("resources.deleteConfirm", { url: r.full_url }));
        del.title = t("resources.deleteConfirmShort");
        disarm = setTimeout(() => {
          armed = false;
          del.classList.remove("armed");
          del.title = "";
          del.setAttribute("aria-label", t("resources.deleteLabel", { url: r.full_url }));
        }, 4000);
        return;
      }
      clearTimeout(disarm);
      setBusy(del, true);
      try {
        await request("DELETE", `/resources/${encodeURIComponent(id)}`);
        toast(t("resources.deleted", { url: r.full_url }), { kind: "success" });
        loadList();
      } catch (err) {
        setBusy(del, false);
        toast(errorMessage(err), { kind: "error" });
      }
    });
    return h(
      "tr",
      { "data-testid": "resource-row", "data-uuid": id },
      h(
        "td",
        { "data-label": t("resources.colUrl"), class: "url-cell" },
        h("a", { href: `#/resources/${encodeURIComponent(id)}`, "data-testid": "resource-link" }, r.domain || hostOf(r.full_url)),
        h("span", { class: "muted small url-full" }, r.full_url)
      ),
      h("td", { "data-label": t("resources.colZone") }, r.domain_zone ? h("span", { class: "chip" }, `.${r.domain_zone}`) : "—"),
      h("td", { "data-label": t("resources.colStatus") }, statusBadge(r)),
      h("td", { "data-label": t("resources.colCode"), class: "num" }, r.status_code ?? "—"),
      h("td", { "data-label": t("resources.colTime"), class: "num" }, r.response_time_ms !== null && r.response_time_ms !== undefined ? t("units.ms", { value: Math.round(r.response_time_ms) }) : "—"),
      h("td", { "data-label": t("resources.colChecked") }, r.checked_at ? h("time", { datetime: r.checked_at, title: formatDateTime(r.checked_at) }, formatRelative(r.checked_at)) : "—"),
      h("td", { "data-label": t("resources.colFails"), class: "num" }, r.unavailable_count ?? 0),
      h("td", { class: "actions" }, del)
    );
  }

  loadList();
  const pendingImport = sessionStorage.getItem(IMPORT_KEY);
  if (pendingImport) pollImport(pendingImport);

  return () => {
    alive = false;
    clearTimeout(pollTimer);
  };
}

// ================================================================= one resource

export function mountResource(container, ctx) {
  const uuid = ctx.arg;
  let alive = true;
  let shotUrl = null;
  let shotTimer = null;
  const back = h("a", { href: "#/resources", class: "back-link", "data-testid": "back-to-resources" }, `← ${t("resource.back")}`);
  const body = h("div", { class: "resource-body" }, loadingBlock());
  const page = h("section", { class: "resource-page", "data-testid": "resource-page" }, back, body);
  container.appendChild(page);

  async function load() {
    try {
      const data = await request("GET", `/resources/${encodeURIComponent(uuid)}`);
      if (!alive) return;
      render(data || {});
    } catch (err) {
      if (!alive) return;
      if (err.status === 404) {
        setChildren(body, messagePanel(t("resource.notFound"), t("resource.notFoundText"), h("a", { href: "#/resources", class: "button" }, t("resource.back"))));
        return;
      }
      setChildren(body, errorBlock(err, load));
    }
  }

  function render(data) {
    const r = data.resource && typeof data.resource === "object" ? data.resource : data;
    const checks = (Array.isArray(data.checks) && data.checks) || (Array.isArray(r.checks) && r.checks) || [];
    const events = (Array.isArray(data.events) && data.events) || (Array.isArray(r.events) && r.events) || [];
    const latest = checks.length ? [...checks].sort((a, b) => Date.parse(b.checked_at) - Date.parse(a.checked_at))[0] : null;
    const summary = { ...r };
    if (latest) {
      for (const f of ["status_code", "is_available", "checked_at", "response_time_ms"]) if (summary[f] === undefined) summary[f] = latest[f];
    }
    const queryParams = r.query_params && typeof r.query_params === "object" ? Object.entries(r.query_params) : [];

    const del = h("button", { type: "button", class: "button danger-outline", "data-testid": "resource-delete" }, icon(ICONS.trash, { size: 16 }), h("span", null, t("resource.delete")));
    const confirm = h(
      "span",
      { class: "delete-confirm", hidden: true },
      h("span", null, t("resource.deleteConfirm")),
      h("button", { type: "button", class: "button danger", "data-testid": "resource-delete-confirm" }, t("resource.delete")),
      h("button", { type: "button", class: "button" }, t("common.cancel"))
    );
    del.addEventListener("click", () => {
      del.hidden = true;
      confirm.hidden = false;
      confirm.querySelector(".danger").focus();
    });
    confirm.lastChild.addEventListener("click", () => {
      confirm.hidden = true;
      del.hidden = false;
      del.focus();
    });
    confirm.querySelector(".danger").addEventListener("click", async (e) => {
      setBusy(e.currentTarget, true);
      try {
        await request("DELETE", `/resources/${encodeURIComponent(r.uuid || uuid)}`);
        toast(t("resources.deleted", { url: r.full_url }), { kind: "success" });
        ctx.navigate("#/resources");
      } catch (err) {
        if (err.status === 404) ctx.navigate("#/resources");
        else {
          setBusy(e.currentTarget, false);
          toast(errorMessage(err), { kind: "error" });
        }
      }
    });

    const facts = h(
      "dl",
      { class: "facts" },
      fact(t("resources.colStatus"), statusBadge(summary)),
      fact(t("resources.colCode"), summary.status_code ?? "—"),
      fact(t("resources.colTime"), summary.response_time_ms !== null && summary.response_time_ms !== undefined ? t("units.ms", { value: Math.round(summary.response_time_ms) }) : "—"),
      fact(t("resources.colChecked"), summary.checked_at ? formatDateTime(summary.checked_at) : "—"),
      fact(t("resources.colFails"), summary.unavailable_count ?? 0),
      fact(t("resource.nextCheck"), nextCheck(r)),
      fact(t("resources.colZone"), r.domain_zone || "—"),
      fact(t("resource.protocol"), r.protocol || "—"),
      fact(t("resource.path"), r.url_path || "/"),
      queryParams.length ? fact(t("resource.query"), queryParams.map(([k, v]) => `${k}=${Array.isArray(v) ? v.join(",") : v}`).join("&")) : null
    );

    // Screenshot
    let shotSig = screenshotSig(data.screenshot || r.screenshot);
    const shotBox = h("div", { class: "screenshot", "data-testid": "screenshot" }, loadingBlock());
    const shotInput = h("input", { type: "file", id: "shot-file", name: "file", accept: "image/png,image/jpeg,image/webp", "data-testid": "screenshot-input" });
    const shotProgress = h("progress", { max: 100, value: 0, hidden: true, "aria-label": t("resources.uploadProgress") });
    const shotUpload = h("button", { type: "submit", class: "button small" }, icon(ICONS.upload, { size: 16 }), h("span", null, t("resource.uploadShot")));
    const captureBtn = h("button", { type: "button", class: "button small", "data-testid": "capture-button" }, icon(ICONS.camera, { size: 16 }), h("span", null, t("resource.capture")));
    const shotForm = h("form", { class: "shot-form", novalidate: true, "data-testid": "screenshot-form" }, h("label", { for: "shot-file", class: "visually-hidden" }, t("resource.shotFile")), shotInput, shotUpload, captureBtn, shotProgress, h("div", { class: "form-error", role: "alert", hidden: true }));
    shotForm.addEventListener("submit", async (e) => {
      e.preventDefault();
      clearFormErrors(shotForm);
      const file = shotInput.files && shotInput.files[0];
      if (!file) {
        showFormError(shotForm, t("resource.chooseImage"));
        return;
      }
      const fd = new FormData();
      fd.append("file", file, file.name);
      setBusy(shotUpload, true);
      shotProgress.hidden = false;
      try {
        const saved = await upload(`/resources/${encodeURIComponent(r.uuid || uuid)}`, fd, { onProgress: (f) => (shotProgress.value = f === null ? 0 : Math.round(f * 100)) });
        if (saved && typeof saved === "object") shotSig = screenshotSig(saved);
        shotInput.value = "";
        toast(t("resource.shotUploaded"), { kind: "success" });
        loadShot();
      } catch (err) {
        showFormError(shotForm, err.status === 404 || err.status === 405 ? t("watch.notAvailableText") : errorMessage(err));
      } finally {
        setBusy(shotUpload, false);
        shotProgress.hidden = true;
      }
    });
    // "Capture now": the server queues a capture job (202) or says why it can't (503 with a
    // message, e.g. no Chromium on the server). After a 202, watch GET /resources/{uuid} until
    // its screenshot changes, then show the new image.
    const captureStatus = h("p", { class: "capture-status", role: "status", "data-testid": "capture-status", hidden: true });
    const setCaptureStatus = (message, kind = "info") => {
      captureStatus.hidden = !message;
      captureStatus.textContent = message || "";
      captureStatus.dataset.kind = kind;
    };
    captureBtn.addEventListener("click", async () => {
      clearTimeout(shotTimer);
      setBusy(captureBtn, true);
      setCaptureStatus(t("resource.captureRequesting"));
      const before = shotSig;
      let res;
      try {
        res = await request("POST", `/resources/${encodeURIComponent(r.uuid || uuid)}/screenshot/capture`);
      } catch (err) {
        if (!alive) return;
        setBusy(captureBtn, false);
        let message;
        if (err.status === 404 || err.status === 405) message = t("resource.captureUnsupported");
        else if (err.status === 503) message = err.serverMessage || t("resource.captureUnavailable");
        else message = errorMessage(err);
        setCaptureStatus(message, "error");
        return;
      }
      if (!alive) return;
      const jobId = res && (res.job_id ?? res.id);
      setCaptureStatus(jobId !== undefined && jobId !== null ? t("resource.capturingJob", { id: jobId }) : t("resource.capturing"));
      const started = Date.now();
      const poll = async () => {
        if (!alive) return;
        try {
          const fresh = await request("GET", `/resources/${encodeURIComponent(r.uuid || uuid)}`);
          if (!alive) return;
          const sig = screenshotSig(fresh && fresh.screenshot);
          if (sig && sig !== before) {
            shotSig = sig;
            await loadShot(true);
            if (!alive) return;
            setBusy(captureBtn, false);
            setCaptureStatus(t("resource.captureDone"), "success");
            return;
          }
        } catch (err) {
          if (!alive) return;
          if (err.status === 404) {
            setBusy(captureBtn, false);
            setCaptureStatus(t("resource.notFound"), "error");
            return;
          }
          /* a network hiccup: try again until the time is up */
        }
        if (Date.now() - started >= CAPTURE_WAIT_MS) {
          setBusy(captureBtn, false);
          setCaptureStatus(t("resource.captureSlow"));
          return;
        }
        shotTimer = setTimeout(poll, CAPTURE_POLL_MS);
      };
      shotTimer = setTimeout(poll, CAPTURE_POLL_MS);
    });

    async function loadShot(quiet = false) {
      try {
        const res = await fetch(apiUrl(`/resources/${encodeURIComponent(r.uuid || uuid)}/screenshot`), { credentials: "include", cache: "no-store" });
        if (!alive) return;
        if (!res.ok) {
          if (!quiet || !shotUrl) setChildren(shotBox, h("p", { class: "muted" }, t("resource.noShot")));
          return;
        }
        const blob = await res.blob();
        if (!alive) return;
        if (shotUrl) URL.revokeObjectURL(shotUrl);
        shotUrl = URL.createObjectURL(blob);
        setChildren(shotBox, h("img", { src: shotUrl, alt: t("resource.shotAlt", { url: r.full_url }), loading: "lazy" }));
      } catch {
        if (alive && !quiet) setChildren(shotBox, h("p", { class: "muted" }, t("resource.noShot")));
      }
    }

    setChildren(body, 
      h(
        "div",
        { class: "page-head resource-head" },
        h("div", null, h("h1", { "data-testid": "resource-title" }, r.domain || hostOf(r.full_url) || uuid), r.full_url ? h("a", { href: r.full_url, target: "_blank", rel: "noopener noreferrer", class: "external" }, r.full_url, " ", icon(ICONS.link, { size: 14 })) : null),
        h("div", { class: "head-actions" }, del, confirm)
      ),
      h("div", { class: "panel" }, facts),
      alertSettingsPanel({ ...r, uuid: r.uuid || uuid }, null),
      h("div", { class: "panel" }, h("h2", null, t("resource.history")), checksChart(checks), checksTable(checks)),
      h("div", { class: "two-up" }, h("div", { class: "panel" }, h("h2", null, t("resource.screenshot")), shotBox, shotForm, captureStatus), h("div", { class: "panel" }, h("h2", null, t("resource.events")), eventList(events.map(normalizeEvent), { linkResources: false })))
    );
    loadShot();
  }

  load();
  return () => {
    alive = false;
    clearTimeout(shotTimer);
    if (shotUrl) URL.revokeObjectURL(shotUrl);
  };
}

/** What identifies one stored screenshot, to notice when a capture has replaced it. */
function screenshotSig(shot) {
  if (!shot || typeof shot !== "object") return "";
  return JSON.stringify([shot.created_at ?? null, shot.size_bytes ?? null, shot.url ?? null, shot.source ?? null]);
}

function fact(label, value) {
  return h("div", { class: "fact" }, h("dt", null, label), h("dd", null, value));
}

function checksTable(checks) {
  if (!checks.length) return null;
  const recent = [...checks].sort((a, b) => Date.parse(b.checked_at) - Date.parse(a.checked_at)).slice(0, 20);
  return h(
    "details",
    { class: "checks-details" },
    h("summary", null, t("resource.recentChecks", { count: recent.length })),
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "data-table compact" },
        h("thead", null, h("tr", null, h("th", { scope: "col" }, t("resources.colChecked")), h("th", { scope: "col" }, t("resources.colStatus")), h("th", { scope: "col", class: "num" }, t("resources.colCode")), h("th", { scope: "col", class: "num" }, t("resources.colTime")))),
        h(
          "tbody",
          null,
          recent.map((c) =>
            h(
              "tr",
              null,
              h("td", { "data-label": t("resources.colChecked") }, formatDateTime(c.checked_at)),
              h("td", { "data-label": t("resources.colStatus") }, statusBadge(c), c.error_kind || c.error ? h("span", { class: "muted small" }, ` ${c.error_kind || c.error}`) : null),
              h("td", { "data-label": t("resources.colCode"), class: "num" }, c.status_code ?? "—"),
              h("td", { "data-label": t("resources.colTime"), class: "num" }, c.response_time_ms !== null && c.response_time_ms !== undefined ? t("units.ms", { value: Math.round(c.response_time_ms) }) : "—")
            )
          )
        )
      )
    )
  );
}

/** An SVG chart of response times, with each point coloured by availability. */
function checksChart(checks) {
  const points = checks
    .filter((c) => c && c.checked_at && !Number.isNaN(Date.parse(c.checked_at)))
    .map((c) => ({ time: Date.parse(c.checked_at), ms: Number(c.response_time_ms) || 0, ok: c.is_available !== false }))
    .sort((a, b) => a.time - b.time);
  if (!points.length) return h("p", { class: "muted", "data-testid": "chart-empty" }, t("resource.noChecks"));
  const W = 900;
  const H = 220;
  const pad = { l: 64, r: 16, t: 12, b: 28 };
  const t0 = points[0].time;
  const t1 = points[points.length - 1].time;
  const maxMs = Math.max(100, ...points.map((p) => p.ms)) * 1.1;
  const x = (time) => pad.l + (t1 === t0 ? (W - pad.l - pad.r) / 2 : ((time - t0) / (t1 - t0)) * (W - pad.l - pad.r));
  const y = (ms) => H - pad.b - (ms / maxMs) * (H - pad.t - pad.b);
  const ns = "http://www.w3.org/2000/svg";
  const el = (tag, attrs) => {
    const n = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, String(v));
    return n;
  };
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "data-testid": "checks-chart" });
  const up = points.filter((p) => p.ok).length;
  svg.setAttribute("aria-label", t("resource.chartLabel", { count: points.length, up }));
  for (let i = 0; i <= 4; i++) {
    const v = (maxMs / 4) * i;
    svg.appendChild(el("line", { x1: pad.l, x2: W - pad.r, y1: y(v), y2: y(v), class: "grid" }));
    const label = el("text", { x: pad.l - 6, y: y(v) + 4, class: "axis", "text-anchor": "end" });
    label.textContent = t("units.ms", { value: Math.round(v) });
    svg.appendChild(label);
  }
  if (points.length > 1) {
    svg.appendChild(el("polyline", { points: points.map((p) => `${x(p.time)},${y(p.ms)}`).join(" "), class: "line" }));
  }
  for (const p of points) {
    const c = el("circle", { cx: x(p.time), cy: y(p.ms), r: 4, class: p.ok ? "pt ok" : "pt bad" });
    const title = el("title", {});
    title.textContent = `${formatDateTime(new Date(p.time).toISOString())}: ${p.ok ? t("resources.up") : t("resources.down")}, ${p.ms} ms`;
    c.appendChild(title);
    svg.appendChild(c);
  }
  const l0 = el("text", { x: pad.l, y: H - 8, class: "axis" });
  l0.textContent = formatDateTime(new Date(t0).toISOString(), { dateStyle: "short", timeStyle: "short" });
  svg.appendChild(l0);
  if (t1 !== t0) {
    const l1 = el("text", { x: W - pad.r, y: H - 8, class: "axis", "text-anchor": "end" });
    l1.textContent = formatDateTime(new Date(t1).toISOString(), { dateStyle: "short", timeStyle: "short" });
    svg.appendChild(l1);
  }
  return h("div", { class: "chart-wrap" }, svg, h("p", { class: "chart-legend" }, h("span", { class: "dot ok" }), t("resources.up"), h("span", { class: "dot bad" }), t("resources.down")));
}

// ================================================================= feed

function pick(obj, ...names) {
  for (const n of names) if (obj && obj[n] !== undefined && obj[n] !== null) return obj[n];
  return undefined;
}

export function normalizeEvent(e) {
  e = e || {};
  const nested = [e, e.payload, e.data, e.details, e.resource].filter((x) => x && typeof x === "object");
  const from = (...names) => {
    for (const o of nested) {
      const v = pick(o, ...names);
      if (v !== undefined) return v;
    }
    return undefined;
  };
  return {
    id: e.id,
    type: String(from("type", "kind", "event_type", "event") || "event"),
    uuid: from("resource_uuid", "uuid"),
    url: from("full_url", "url", "resource_url"),
    at: from("created_at", "timestamp", "occurred_at", "at", "time"),
    available: from("is_available", "available", "new_status"),
    statusCode: from("status_code"),
    message: from("message", "description"),
    exists: from("resource_exists"),
  };
}

function eventText(ev) {
  const target = ev.url ? hostOf(ev.url) : ev.uuid || "";
  switch (ev.type) {
    case "resource_added":
      return t("feed.added", { target });
    case "status_changed":
      if (ev.available === true || ev.available === "up" || ev.available === "available") return t("feed.up", { target });
      if (ev.available === false || ev.available === "down" || ev.available === "unavailable") return t("feed.down", { target, code: ev.statusCode ?? "—" });
      return t("feed.changed", { target });
    case "photo_added":
    case "screenshot_added":
      return t("feed.photo", { target });
    case "resource_deleted":
      return t("feed.deleted", { target });
    default:
      return ev.message || `${ev.type}: ${target}`;
  }
}

function eventIcon(ev) {
  switch (ev.type) {
    case "resource_added":
      return ICONS.plus;
    case "photo_added":
    case "screenshot_added":
      return ICONS.camera;
    case "resource_deleted":
      return ICONS.trash;
    default:
      return ICONS.refresh;
  }
}

function eventList(events, { linkResources = true } = {}) {
  if (!events.length) return h("p", { class: "muted", "data-testid": "events-empty" }, t("feed.empty"));
  return h(
    "ol",
    { class: "timeline", "data-testid": "event-list" },
    events.map((ev) => {
      const tone = ev.type === "resource_deleted" || (ev.type === "status_changed" && (ev.available === false || ev.available === "down")) ? "bad" : ev.type === "status_changed" ? "ok" : "info";
      const text = eventText(ev);
      // No link to a resource that is gone (its events stay in the feed).
      const canLink = linkResources && ev.uuid && ev.type !== "resource_deleted" && ev.exists !== false;
      return h(
        "li",
        { class: `event ${tone}`, "data-testid": "event-item", "data-type": ev.type },
        h("span", { class: "event-icon" }, icon(eventIcon(ev), { size: 16 })),
        h(
          "div",
          { class: "event-body" },
          canLink ? h("a", { href: `#/resources/${encodeURIComponent(ev.uuid)}` }, text) : h("span", null, text),
          ev.url ? h("span", { class: "muted small url-full" }, ev.url) : null,
          ev.at ? h("time", { datetime: ev.at, title: formatDateTime(ev.at), class: "muted small" }, formatRelative(ev.at)) : null
        )
      );
    })
  );
}

export function mountFeed(container, ctx) {
  const pageNo = positiveInt(ctx.params.get("page"), 1);
  let alive = true;
  let timer = null;
  const list = h("div", { class: "feed-list" }, loadingBlock());
  const refreshBtn = h("button", { type: "button", class: "button small", "data-testid": "feed-refresh" }, icon(ICONS.refresh, { size: 16 }), h("span", null, t("feed.refresh")));
  refreshBtn.addEventListener("click", () => load());
  const page = h(
    "section",
    { class: "feed", "data-testid": "feed-page" },
    h("div", { class: "page-head with-actions" }, h("div", null, h("h1", null, t("feed.title")), h("p", { class: "subtitle" }, t("feed.subtitle"))), refreshBtn),
    h("div", { class: "panel" }, list)
  );
  container.appendChild(page);

  async function load() {
    clearTimeout(timer);
    try {
      const data = await request("GET", `/feed?page=${pageNo}&per_page=20`);
      if (!alive) return;
      const items = Array.isArray(data) ? data : (data && (data.items || data.events)) || [];
      const meta = (data && data.meta) || {};
      setChildren(list, 
        eventList(items.map(normalizeEvent)),
        pager({ page: pageNo, totalPages: Number(meta.total_pages) || 1, hashFor: (p) => buildHash("/feed", { page: p === 1 ? "" : p }), testid: "feed-pager" })
      );
      if (pageNo === 1) timer = setTimeout(load, 30000);
    } catch (err) {
      if (!alive) return;
      if (err.status === 404 || err.status === 405) {
        setChildren(page, h("div", { class: "page-head" }, h("h1", null, t("feed.title"))), notAvailable(t("feed.title")));
        return;
      }
      setChildren(list, errorBlock(err, load));
    }
  }
  load();
  return () => {
    alive = false;
    clearTimeout(timer);
  };
}

/** When the next check runs: "due now" for a first check (or one that is late), else relative. */
function nextCheck(r) {
  if (!r.next_check_at) return "—";
  const at = new Date(r.next_check_at);
  const label = at.getTime() <= Date.now() + 5000 ? t("resource.nextCheckNow") : formatRelative(r.next_check_at);
  return h("time", { datetime: r.next_check_at, title: formatDateTime(r.next_check_at), "data-testid": "next-check" }, label);
}
