// Board: the task list, the task editor dialog (autosave) and drag-and-drop ordering.
import { request } from "./api.js";
import { t } from "./i18n.js";
import {
  h,
  icon,
  ICONS,
  toast,
  errorMessage,
  setBusy,
  formatDateTime,
  announce,
  openDialog,
  restoreFocus,
  showFieldError,
  clearFormErrors,
} from "./dom.js";

/** Delay between the last keystroke and the save (tests may override it with window.PULSEBOARD_SAVE_DEBOUNCE_MS). */
function saveDelay() {
  const override = Number(window.PULSEBOARD_SAVE_DEBOUNCE_MS);
  return Number.isFinite(override) && override >= 0 ? override : 400;
}

/** Client-side copy of the user's tasks, keyed by String(id). */
const model = { tasks: new Map(), loaded: false, error: null, loading: null, generation: 0 };
/** The mounted board view (null when another route is shown). */
let view = null;
/** Per-task autosave queues. */
const savers = new Map();
/** Id of the task open in the editor dialog. */
let editingId = null;
/** Active drag operation, if any. */
let drag = null;
let renderQueued = false;

const key = (id) => String(id);

function compareIds(a, b) {
  const na = Number(a);
  const nb = Number(b);
  if (Number.isFinite(na) && Number.isFinite(nb)) return na - nb;
  return String(a).localeCompare(String(b));
}

function byPosition(a, b) {
  const pa = Number.isFinite(Number(a.position)) ? Number(a.position) : 0;
  const pb = Number.isFinite(Number(b.position)) ? Number(b.position) : 0;
  return pa - pb || compareIds(a.id, b.id);
}

function byDoneAtDesc(a, b) {
  const da = a.done_at ? Date.parse(a.done_at) : 0;
  const db = b.done_at ? Date.parse(b.done_at) : 0;
  return db - da || compareIds(b.id, a.id);
}

// ================================================================= autosave

class Saver {
  constructor(id) {
    this.id = key(id);
    this.pending = {};
    this.timer = null;
    this.inflight = 0;
    this.chain = Promise.resolve();
    this.state = "idle";
    this.error = null;
    this.deleted = false;
    this.seq = 0;
    /** field → sequence number of the latest request that carries it */
    this.lastSent = {};
    /** highest sequence number whose request has finished */
    this.completed = 0;
  }

  /** Is the local value of this field newer than what the server has confirmed? */
  isDirty(field) {
    return field in this.pending || (this.lastSent[field] || 0) > this.completed;
  }

  get busy() {
    return this.timer !== null || this.inflight > 0 || Object.keys(this.pending).length > 0;
  }

  set(field, value, { immediate = false } = {}) {
    if (this.deleted) return;
    this.pending[field] = value;
    this.error = null;
    this.setState("saving");
    clearTimeout(this.timer);
    this.timer = null;
    if (immediate) this.flush();
    else this.timer = setTimeout(() => this.flush(), saveDelay());
    trackPending();
  }

  drop(field) {
    delete this.pending[field];
    if (!Object.keys(this.pending).length) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    trackPending();
  }

  cancel() {
    this.deleted = true;
    clearTimeout(this.timer);
    this.timer = null;
    this.pending = {};
    trackPending();
  }

  setState(state) {
    this.state = state;
    if (editingId === this.id) renderSaveState();
  }

  /** Send everything pending now. Resolves when this saver's queue is empty. */
  flush() {
    clearTimeout(this.timer);
    this.timer = null;
    const changes = this.pending;
    if (this.deleted || !Object.keys(changes).length) {
      trackPending();
      return this.chain;
    }
    this.pending = {};
    this.inflight++;
    const seq = ++this.seq;
    for (const field of Object.keys(changes)) this.lastSent[field] = seq;
    trackPending();
    const run = async () => {
      try {
        if (this.deleted) return;
        const updated = await request("PATCH", `/tasks/${encodeURIComponent(this.id)}`, { json: changes, keepalive: true });
        if (this.deleted) return;
        mergeServerTask(updated, this, seq);
        if (this.timer === null && !Object.keys(this.pending).length && this.inflight === 1) this.setState("saved");
      } catch (err) {
        if (this.deleted) return;
        if (err.status === 404) {
          // Deleted elsewhere (another tab or device).
          this.cancel();
          removeTask(this.id);
          if (editingId === this.id) closeEditor();
          toast(t("task.goneElsewhere"), { kind: "error" });
          return;
        }
        if (err.status !== 422) {
          // Keep the changes so that Retry (or the next edit) sends them again.
          for (const [field, value] of Object.entries(changes)) {
            if (!(field in this.pending)) this.pending[field] = value;
          }
        }
        this.error = err;
        this.setState("error");
        if (err.status === 422 && editingId === this.id && err.details && err.details.title) {
          showFieldError(editor().form, "title", String(err.details.title));
        }
        if (editingId !== this.id && err.status !== 401) {
          const task = model.tasks.get(this.id);
          toast(t("save.failedToast", { title: task ? task.title : "" }), {
            kind: "error",
            action: { label: t("common.retry"), onClick: () => this.flush() },
          });
        }
      } finally {
        this.completed = Math.max(this.completed, seq);
        this.inflight--;
        trackPending();
      }
    };
    this.chain = this.chain.then(run, run);
    return this.chain;
  }
}

function saverFor(id) {
  const k = key(id);
  let s = savers.get(k);
  if (!s) {
    s = new Saver(k);
    savers.set(k, s);
  }
  return s;
}

/** Number of tasks with unsaved or in-flight edits, exposed on <html data-pending-saves>. */
function trackPending() {
  let n = 0;
  for (const s of savers.values()) if (s.busy) n++;
  document.documentElement.dataset.pendingSaves = String(n);
}

/** Send every pending edit now (used on dialog close, logout, page hide). */
export function flushAllSaves() {
  return Promise.all([...savers.values()].map((s) => s.flush()));
}

function mergeServerTask(updated, saver, seq = Infinity) {
  if (!updated || updated.id === undefined) return;
  const k = key(updated.id);
  const local = model.tasks.get(k);
  const merged = { ...local, ...updated };
  // Edits made after this request went out (still pending, or sent in a later
  // request) win over the server's echo of an older state.
  if (saver && local) {
    for (const field of Object.keys(merged)) {
      if (field in saver.pending || (saver.lastSent[field] || 0) > seq) merged[field] = local[field];
    }
    if (merged.done === local.done && "done_at" in local && ("done" in saver.pending || (saver.lastSent.done || 0) > seq)) merged.done_at = local.done_at;
  }
  model.tasks.set(k, merged);
  scheduleRender();
  if (editingId === k) renderMeta(merged);
}

function removeTask(id) {
  model.tasks.delete(key(id));
  scheduleRender();
}

// ================================================================= loading

async function loadTasks() {
  const generation = model.generation;
  try {
    const list = await request("GET", "/tasks");
    if (generation !== model.generation) return;
    const next = new Map();
    for (const task of Array.isArray(list) ? list : (list && list.items) || []) {
      const k = key(task.id);
      const local = model.tasks.get(k);
      const saver = savers.get(k);
      const merged = { ...task };
      if (saver && local) {
        for (const field of Object.keys(local)) if (saver.isDirty(field)) merged[field] = local[field];
        if (saver.isDirty("done")) merged.done_at = local.done_at;
      }
      next.set(k, merged);
    }
    model.tasks = next;
    model.loaded = true;
    model.error = null;
  } catch (err) {
    if (generation !== model.generation) return;
    model.error = err;
  }
  renderLists();
}

/** Forget everything (logout). */
export function resetBoard() {
  for (const s of savers.values()) s.cancel();
  savers.clear();
  trackPending();
  model.tasks = new Map();
  model.loaded = false;
  model.error = null;
  model.generation++;
  editingId = null;
  const dlg = document.getElementById("task-dialog");
  if (dlg && dlg.open) dlg.close();
}

// ================================================================= view

export function mountBoard(container, ctx) {
  const input = h("input", {
    id: "new-task-title",
    name: "title",
    type: "text",
    maxlength: 200,
    autocomplete: "off",
    placeholder: t("board.newPlaceholder"),
    "aria-describedby": "new-task-error",
    "data-testid": "new-task-input",
  });
  const addButton = h(
    "button",
    { type: "submit", class: "button primary", "aria-label": t("board.add"), "data-testid": "add-task-button" },
    icon(ICONS.plus, { size: 18 }),
    h("span", null, t("board.add"))
  );
  const addError = h("p", { class: "field-error", id: "new-task-error", "data-error-for": "title", "data-testid": "new-task-error", hidden: true });
  const form = h(
    "form",
    { class: "add-task", "data-testid": "add-task-form", novalidate: true, autocomplete: "off" },
    h("label", { for: "new-task-title", class: "visually-hidden" }, t("board.newLabel")),
    h("div", { class: "add-task-row" }, input, addButton),
    addError
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    addTask(input, addButton, form);
  });
  input.addEventListener("input", () => {
    if (!addError.hidden) clearFormErrors(form);
  });

  const todoList = h("ul", { class: "task-list", "data-testid": "todo-list", "aria-labelledby": "todo-heading", "data-kind": "todo" });
  const doneList = h("ul", { class: "task-list done", "data-testid": "done-list", "aria-labelledby": "done-heading", "data-kind": "done" });
  const todoCount = h("span", { class: "count", "data-testid": "todo-count" }, "0");
  const doneCount = h("span", { class: "count", "data-testid": "done-count" }, "0");
  const todoEmpty = h("p", { class: "list-empty", "data-testid": "todo-empty" }, t("board.todoEmpty"));
  const doneEmpty = h("p", { class: "list-empty", "data-testid": "done-empty" }, t("board.doneEmpty"));
  const reorderHint = h("p", { class: "list-hint", id: "reorder-hint" }, t("board.reorderHint"));

  const columns = h(
    "div",
    { class: "columns", "data-testid": "task-columns" },
    h(
      "section",
      { class: "column panel", "aria-labelledby": "todo-heading" },
      h("h2", { id: "todo-heading", class: "column-title" }, h("span", null, t("board.todo")), todoCount),
      todoList,
      todoEmpty,
      reorderHint
    ),
    h(
      "section",
      { class: "column panel", "aria-labelledby": "done-heading" },
      h("h2", { id: "done-heading", class: "column-title" }, h("span", null, t("board.done")), doneCount),
      doneList,
      doneEmpty
    )
  );

  const empty = h(
    "div",
    { class: "empty-state panel", "data-testid": "empty-state", hidden: true },
    emptyIllustration(),
    h("h2", null, t("board.emptyTitle")),
    h("p", null, t("board.emptyText")),
    h(
      "ol",
      { class: "empty-steps" },
      h("li", null, t("board.emptyStep1")),
      h("li", null, t("board.emptyStep2")),
      h("li", null, t("board.emptyStep3"))
    )
  );

  const status = h("div", { class: "board-status", "data-testid": "board-status" });

  const root = h(
    "section",
    { class: "board", "data-testid": "board" },
    h(
      "div",
      { class: "board-head" },
      h("h1", null, t("board.title")),
      h("p", { class: "subtitle" }, t("board.greeting", { email: ctx.user.email }))
    ),
    form,
    status,
    empty,
    columns
  );
  container.appendChild(root);

  view = { root, form, input, addButton, todoList, doneList, todoCount, doneCount, todoEmpty, doneEmpty, reorderHint, columns, empty, status };
  todoList.addEventListener("click", onListClick);
  doneList.addEventListener("click", onListClick);
  todoList.addEventListener("change", onListChange);
  doneList.addEventListener("change", onListChange);
  todoList.addEventListener("pointerdown", onPointerDown);
  todoList.addEventListener("keydown", onHandleKey);

  setupEditor();
  renderLists();
  loadTasks(); // refresh even when we have a cached copy
  if (!matchMedia("(pointer: coarse)").matches) input.focus();

  return () => {
    if (drag) endDrag(false);
    view = null;
    const dlg = document.getElementById("task-dialog");
    if (dlg.open) dlg.close();
  };
}

function emptyIllustration() {
  const wrap = h("div", { class: "empty-illustration", "aria-hidden": "true" });
  wrap.innerHTML =
    '<svg viewBox="0 0 120 90" width="120" height="90"><rect x="8" y="10" width="48" height="70" rx="8" class="ill-a"/><rect x="64" y="10" width="48" height="46" rx="8" class="ill-b"/><rect x="16" y="22" width="32" height="10" rx="4" class="ill-c"/><rect x="16" y="38" width="26" height="10" rx="4" class="ill-c"/><rect x="72" y="22" width="30" height="10" rx="4" class="ill-c"/><path d="M75 40l5 5 10-10" class="ill-check"/></svg>';
  return wrap;
}

async function addTask(input, button, form) {
  if (button.disabled) return;
  clearFormErrors(form);
  const title = input.value.trim();
  if (!title) {
    showFieldError(form, "title", t("board.titleRequired"));
    input.focus();
    return;
  }
  setBusy(button, true);
  try {
    const task = await request("POST", "/tasks", { json: { title } });
    model.tasks.set(key(task.id), task);
    if (input.value.trim() === title) input.value = "";
    renderLists();
    announce(t("board.added", { title: task.title }));
    const li = view && view.todoList.querySelector(`[data-id="${CSS.escape(key(task.id))}"]`);
    if (li) {
      li.classList.add("flash");
      setTimeout(() => li.classList.remove("flash"), 1200);
    }
  } catch (err) {
    const detail = err.details && (err.details.title || Object.values(err.details)[0]);
    showFieldError(form, "title", detail ? String(detail) : errorMessage(err));
  } finally {
    setBusy(button, false);
    if (view && document.activeElement !== view.input && !document.querySelector("dialog[open]")) view.input.focus();
  }
}

function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  queueMicrotask(() => {
    renderQueued = false;
    renderLists();
  });
}

function renderLists() {
  if (!view) return;
  if (drag) {
    scheduleAfterDrag = true;
    return;
  }
  const { status, empty, columns } = view;
  status.replaceChildren();
  if (!model.loaded) {
    empty.hidden = true;
    columns.hidden = true;
    if (model.error) {
      status.appendChild(
        h(
          "div",
          { class: "inline-error", role: "alert", "data-testid": "tasks-error" },
          h("span", null, t("board.loadFailed"), " ", errorMessage(model.error)),
          h("button", { type: "button", class: "button small", onclick: () => loadTasks() }, t("common.retry"))
        )
      );
    } else {
      status.appendChild(
        h("div", { class: "loading-inline", "aria-busy": "true" }, h("span", { class: "spinner", "aria-hidden": "true" }), t("common.loading"))
      );
    }
    return;
  }
  const tasks = [...model.tasks.values()];
  const todo = tasks.filter((x) => !x.done).sort(byPosition);
  const done = tasks.filter((x) => x.done).sort(byDoneAtDesc);
  empty.hidden = tasks.length > 0;
  columns.hidden = tasks.length === 0;
  view.root.dataset.taskCount = String(tasks.length);

  // Remember focus inside the lists so that re-rendering never steals it.
  const active = document.activeElement;
  let focus = null;
  if (active && active.closest && active.closest(".task-list")) {
    const li = active.closest("li[data-id]");
    if (li) focus = { id: li.dataset.id, role: active.dataset.role };
  }

  syncList(view.todoList, todo, "todo");
  syncList(view.doneList, done, "done");
  view.todoCount.textContent = String(todo.length);
  view.doneCount.textContent = String(done.length);
  view.todoEmpty.hidden = todo.length > 0;
  view.doneEmpty.hidden = done.length > 0;
  view.todoEmpty.textContent = done.length > 0 ? t("board.allDone") : t("board.todoEmpty");
  view.reorderHint.hidden = todo.length < 2;

  if (focus) {
    const li = view.root.querySelector(`li[data-id="${CSS.escape(focus.id)}"]`);
    const target = li && (li.querySelector(`[data-role="${focus.role}"]`) || li.querySelector('[data-role="open"]'));
    if (target && document.activeElement !== target) target.focus({ preventScroll: true });
  }
}
let scheduleAfterDrag = false;

function syncList(ul, tasks, kind) {
  const existing = new Map();
  for (const li of ul.children) existing.set(li.dataset.id, li);
  tasks.forEach((task, index) => {
    const k = key(task.id);
    let li = existing.get(k);
    if (li) {
      existing.delete(k);
      updateTaskItem(li, task, kind);
    } else {
      li = createTaskItem(task, kind);
    }
    if (ul.children[index] !== li) ul.insertBefore(li, ul.children[index] || null);
  });
  for (const li of existing.values()) li.remove();
}

function createTaskItem(task, kind) {
  const li = h("li", { class: "task", "data-testid": "task-item", "data-id": key(task.id), "data-kind": kind });
  if (kind === "todo") {
    li.appendChild(
      h(
        "button",
        { type: "button", class: "drag-handle", "data-role": "handle", "data-testid": "task-drag-handle", "aria-describedby": "reorder-hint" },
        icon(ICONS.grip, { size: 18 })
      )
    );
  }
  const toggle = h("input", { type: "checkbox", class: "task-check", "data-role": "toggle", "data-testid": "task-toggle" });
  li.appendChild(h("span", { class: "check-wrap" }, toggle));
  li.appendChild(
    h(
      "button",
      { type: "button", class: "task-open", "data-role": "open", "data-testid": "task-open", "aria-haspopup": "dialog" },
      h("span", { class: "task-title", "data-testid": "task-title" }),
      h("span", { class: "task-sub", "data-testid": "task-sub" })
    )
  );
  updateTaskItem(li, task, kind);
  return li;
}

function updateTaskItem(li, task, kind) {
  li.dataset.kind = kind;
  li.dataset.done = task.done ? "true" : "false";
  const title = li.querySelector(".task-title");
  if (title.textContent !== task.title) title.textContent = task.title;
  const sub = li.querySelector(".task-sub");
  let subText = "";
  if (kind === "done" && task.done_at) subText = t("task.doneAt", { when: formatDateTime(task.done_at) });
  else if (task.description) subText = String(task.description).split("\n").find((line) => line.trim()) || "";
  sub.textContent = subText;
  sub.hidden = !subText;
  const toggle = li.querySelector(".task-check");
  toggle.checked = !!task.done;
  toggle.setAttribute("aria-label", task.done ? t("task.markUndoneLabel", { title: task.title }) : t("task.markDoneLabel", { title: task.title }));
  const handle = li.querySelector(".drag-handle");
  if (handle) handle.setAttribute("aria-label", t("task.reorderLabel", { title: task.title }));
  const saver = savers.get(key(task.id));
  li.classList.toggle("unsaved", !!(saver && saver.state === "error"));
}

let suppressClick = false;

function onListClick(e) {
  if (suppressClick) {
    // The click that ends a drag must not open the task.
    suppressClick = false;
    return;
  }
  const li = e.target.closest("li[data-id]");
  if (!li) return;
  if (e.target.closest('[data-role="toggle"], [data-role="handle"], .check-wrap')) return;
  openEditor(li.dataset.id);
}

function onListChange(e) {
  const toggle = e.target.closest('[data-role="toggle"]');
  if (!toggle) return;
  const li = toggle.closest("li[data-id]");
  setDone(li.dataset.id, toggle.checked);
  announce(toggle.checked ? t("task.movedToDone") : t("task.movedToTodo"));
}

function setDone(id, done) {
  const task = model.tasks.get(key(id));
  if (!task) return;
  task.done = done;
  task.done_at = done ? new Date().toISOString() : null;
  saverFor(id).set("done", done, { immediate: true });
  renderLists();
  if (editingId === key(id)) {
    editor().done.checked = done;
    renderMeta(task);
  }
}

// ================================================================= reordering

function onPointerDown(e) {
  const handle = e.target.closest('[data-role="handle"]');
  if (!handle || (e.pointerType === "mouse" && e.button !== 0)) return;
  const li = handle.closest("li[data-id]");
  const list = li.parentElement;
  const items = [...list.children];
  if (items.length < 2) return;
  e.preventDefault();
  const rects = items.map((el) => {
    const r = el.getBoundingClientRect();
    return { top: r.top + window.scrollY, height: r.height };
  });
  const from = items.indexOf(li);
  const step = from < items.length - 1 ? rects[from + 1].top - rects[from].top : rects[from].top - rects[from - 1].top;
  drag = { li, list, items, rects, from, to: from, startY: e.pageY, pointerId: e.pointerId, step: Math.max(step, rects[from].height) };
  li.classList.add("dragging");
  list.classList.add("sorting");
  handle.focus({ preventScroll: true });
  window.addEventListener("pointermove", onPointerMove);
  window.addEventListener("pointerup", onPointerUp);
  window.addEventListener("pointercancel", onPointerCancel);
}

function onPointerMove(e) {
  if (!drag || e.pointerId !== drag.pointerId) return;
  e.preventDefault();
  // Scroll the page when dragging near the viewport's edges.
  const edge = 48;
  if (e.clientY < edge) window.scrollBy(0, -12);
  else if (e.clientY > window.innerHeight - edge) window.scrollBy(0, 12);
  const dy = e.pageY - drag.startY;
  const { rects, from, items } = drag;
  const centre = rects[from].top + rects[from].height / 2 + dy;
  let to = 0;
  for (let i = 0; i < items.length; i++) {
    if (i === from) continue;
    if (centre > rects[i].top + rects[i].height / 2) to++;
  }
  drag.to = to;
  drag.li.style.transform = `translateY(${dy}px)`;
  items.forEach((el, i) => {
    if (i === from) return;
    let shift = 0;
    if (from < to && i > from && i <= to) shift = -drag.step;
    else if (to < from && i >= to && i < from) shift = drag.step;
    el.style.transform = shift ? `translateY(${shift}px)` : "";
  });
}

function onPointerUp(e) {
  if (!drag || e.pointerId !== drag.pointerId) return;
  endDrag(true);
}

function onPointerCancel(e) {
  if (!drag || e.pointerId !== drag.pointerId) return;
  endDrag(false);
}

function endDrag(commit) {
  window.removeEventListener("pointermove", onPointerMove);
  window.removeEventListener("pointerup", onPointerUp);
  window.removeEventListener("pointercancel", onPointerCancel);
  const { li, list, items, from, to } = drag;
  drag = null;
  if (commit && to !== from) {
    suppressClick = true;
    setTimeout(() => {
      suppressClick = false;
    }, 0);
  }
  for (const el of items) el.style.transform = "";
  li.classList.remove("dragging");
  list.classList.remove("sorting");
  if (commit && to !== from) {
    const ids = items.map((el) => el.dataset.id);
    const [moved] = ids.splice(from, 1);
    ids.splice(to, 0, moved);
    applyOrder(ids, moved);
    const task = model.tasks.get(moved);
    announce(t("task.movedTo", { title: task ? task.title : "", position: to + 1, total: ids.length }));
  }
  if (scheduleAfterDrag || (commit && to !== from)) {
    scheduleAfterDrag = false;
    renderLists();
  }
}

function onHandleKey(e) {
  const handle = e.target.closest('[data-role="handle"]');
  if (!handle || drag) return;
  if (e.key !== "ArrowUp" && e.key !== "ArrowDown") return;
  e.preventDefault();
  const li = handle.closest("li[data-id]");
  const ids = [...li.parentElement.children].map((el) => el.dataset.id);
  const from = ids.indexOf(li.dataset.id);
  const to = e.key === "ArrowUp" ? from - 1 : from + 1;
  if (to < 0 || to >= ids.length) return;
  ids.splice(from, 1);
  ids.splice(to, 0, li.dataset.id);
  applyOrder(ids, li.dataset.id);
  renderLists();
  const task = model.tasks.get(li.dataset.id);
  announce(t("task.movedTo", { title: task ? task.title : "", position: to + 1, total: ids.length }));
}

/** Gap between positions when the list has to be renumbered. */
const POSITION_STEP = 1024;

/**
 * Persist a new order of the undone list. `position` is a sort key (tasks are
 * ordered by position, then id). The moved task gets a position strictly
 * between its new neighbours' when there is room (one PATCH); otherwise the
 * whole undone list is renumbered 1024, 2048, … and only the tasks whose
 * position changes are PATCHed.
 */
function applyOrder(ids, movedId) {
  const pos = (id) => Number(model.tasks.get(id) && model.tasks.get(id).position);
  const index = ids.indexOf(movedId);
  const prev = index > 0 ? pos(ids[index - 1]) : null;
  const next = index < ids.length - 1 ? pos(ids[index + 1]) : null;
  let candidate = null;
  if (prev === null && next !== null && Number.isFinite(next) && next >= 1) {
    candidate = next - POSITION_STEP >= 0 ? next - POSITION_STEP : Math.floor(next / 2);
  } else if (next === null && prev !== null && Number.isFinite(prev)) {
    candidate = prev + POSITION_STEP;
  } else if (prev !== null && next !== null && Number.isFinite(prev) && Number.isFinite(next) && next - prev >= 2) {
    candidate = Math.floor((prev + next) / 2);
  }
  if (candidate !== null && index >= 0) {
    setPosition(movedId, candidate);
    return;
  }
  ids.forEach((id, i) => {
    const p = (i + 1) * POSITION_STEP;
    if (pos(id) !== p) setPosition(id, p);
  });
}

function setPosition(id, position) {
  const task = model.tasks.get(id);
  if (!task) return;
  task.position = position;
  saverFor(id).set("position", position, { immediate: true });
}

// ================================================================= editor dialog

let editorRefs = null;
function editor() {
  if (editorRefs) return editorRefs;
  const dialog = document.getElementById("task-dialog");
  editorRefs = {
    dialog,
    form: document.getElementById("task-form"),
    title: document.getElementById("task-title"),
    description: document.getElementById("task-description"),
    done: document.getElementById("task-done"),
    meta: document.getElementById("task-meta"),
    saveState: dialog.querySelector('[data-testid="save-state"]'),
    del: document.getElementById("task-delete"),
    confirmArea: document.getElementById("task-delete-confirm-area"),
    confirmYes: document.getElementById("task-delete-confirm"),
    confirmNo: document.getElementById("task-delete-cancel"),
  };
  return editorRefs;
}

let editorReady = false;
function setupEditor() {
  if (editorReady) return;
  editorReady = true;
  const ed = editor();

  ed.form.addEventListener("submit", (e) => {
    e.preventDefault();
    if (editingId) saverFor(editingId).flush();
  });
  for (const btn of ed.dialog.querySelectorAll("[data-close]")) btn.addEventListener("click", () => ed.dialog.close());
  // A click on the backdrop closes the dialog.
  ed.dialog.addEventListener("click", (e) => {
    if (e.target !== ed.dialog) return;
    const r = ed.dialog.getBoundingClientRect();
    const inside = e.clientX >= r.left && e.clientX <= r.right && e.clientY >= r.top && e.clientY <= r.bottom;
    if (!inside) ed.dialog.close();
  });

  ed.title.addEventListener("input", () => {
    if (!editingId) return;
    const saver = saverFor(editingId);
    const value = ed.title.value.trim();
    if (!value) {
      showFieldError(ed.form, "title", t("task.titleRequired"));
      saver.drop("title");
      saver.setState("invalid");
      return;
    }
    clearFormErrors(ed.form);
    const task = model.tasks.get(editingId);
    if (task) task.title = value;
    saver.set("title", value);
    scheduleRender();
  });
  ed.description.addEventListener("input", () => {
    if (!editingId) return;
    const task = model.tasks.get(editingId);
    if (task) task.description = ed.description.value;
    saverFor(editingId).set("description", ed.description.value);
    scheduleRender();
  });
  // Leaving a text field saves it at once.
  for (const field of [ed.title, ed.description]) {
    field.addEventListener("change", () => {
      if (editingId && savers.get(editingId)) savers.get(editingId).flush();
    });
  }
  ed.done.addEventListener("change", () => {
    if (!editingId) return;
    setDone(editingId, ed.done.checked);
  });

  ed.del.addEventListener("click", () => {
    ed.del.hidden = true;
    ed.confirmArea.hidden = false;
    ed.confirmYes.focus();
  });
  ed.confirmNo.addEventListener("click", () => {
    hideDeleteConfirm();
    ed.del.focus();
  });
  ed.confirmYes.addEventListener("click", () => deleteEditing());

  ed.dialog.addEventListener("close", () => {
    const id = editingId;
    editingId = null;
    hideDeleteConfirm();
    if (!id) return;
    const saver = savers.get(id);
    if (saver) saver.flush();
    const li = view && view.root.querySelector(`li[data-id="${CSS.escape(id)}"] [data-role="open"]`);
    restoreFocus(ed.dialog, li || (view && view.input));
  });
}

function hideDeleteConfirm() {
  const ed = editor();
  ed.confirmArea.hidden = true;
  ed.del.hidden = false;
  ed.confirmYes.disabled = false;
}

function openEditor(id) {
  const task = model.tasks.get(key(id));
  if (!task) return;
  const ed = editor();
  if (ed.dialog.open) ed.dialog.close();
  editingId = key(id);
  clearFormErrors(ed.form);
  hideDeleteConfirm();
  ed.title.value = task.title || "";
  ed.description.value = task.description || "";
  ed.done.checked = !!task.done;
  renderMeta(task);
  const saver = savers.get(editingId);
  if (saver && !saver.busy && (saver.state === "saved" || saver.state === "invalid")) saver.state = "idle";
  renderSaveState();
  openDialog(ed.dialog, ed.title);
  const end = ed.title.value.length;
  ed.title.setSelectionRange(end, end);
}

function closeEditor() {
  const ed = editor();
  if (ed.dialog.open) ed.dialog.close();
}

function renderMeta(task) {
  const parts = [];
  if (task.created_at) parts.push(t("task.createdAt", { when: formatDateTime(task.created_at) }));
  if (task.updated_at && task.updated_at !== task.created_at) parts.push(t("task.updatedAt", { when: formatDateTime(task.updated_at) }));
  if (task.done && task.done_at) parts.push(t("task.doneAt", { when: formatDateTime(task.done_at) }));
  editor().meta.textContent = parts.join(" · ");
}

function renderSaveState() {
  const el = editor().saveState;
  const saver = editingId ? savers.get(editingId) : null;
  const state = saver ? saver.state : "idle";
  el.dataset.state = state;
  el.replaceChildren();
  switch (state) {
    case "saving":
      el.append(h("span", { class: "spinner small", "aria-hidden": "true" }), t("save.saving"));
      break;
    case "saved":
      el.append(icon(ICONS.check, { size: 16 }), t("save.saved"));
      break;
    case "error":
      el.append(
        h(
          "span",
          null,
          t("save.failed"),
          saver.error && saver.error.status === 0 ? ` — ${t("save.offline")}` : "",
          saver.error && saver.error.status >= 400 && saver.error.status < 500 && saver.error.status !== 401 ? `: ${errorMessage(saver.error)}` : ""
        ),
        saver.error && saver.error.status === 422
          ? null
          : h("button", { type: "button", class: "link-button", "data-testid": "save-retry", onclick: () => saver.flush() }, t("common.retry"))
      );
      break;
    case "invalid":
      el.append(t("save.notSavedTitle"));
      break;
    default:
      el.append(t("save.auto"));
  }
}

async function deleteEditing() {
  const id = editingId;
  if (!id) return;
  const ed = editor();
  setBusy(ed.confirmYes, true);
  const saver = saverFor(id);
  const unsaved = { ...saver.pending };
  saver.cancel();
  try {
    await saver.chain; // let an in-flight save finish first
    await request("DELETE", `/tasks/${encodeURIComponent(id)}`);
  } catch (err) {
    if (err.status !== 404) {
      setBusy(ed.confirmYes, false);
      saver.deleted = false;
      saver.pending = { ...unsaved, ...saver.pending };
      trackPending();
      saver.error = err;
      saver.setState("error");
      toast(t("task.deleteFailed", { reason: errorMessage(err) }), { kind: "error" });
      return;
    }
  }
  setBusy(ed.confirmYes, false);
  const task = model.tasks.get(id);
  savers.delete(id);
  trackPending();
  removeTask(id);
  editingId = null;
  closeEditor();
  if (view) view.input.focus();
  toast(t("task.deleted", { title: task ? task.title : "" }), { kind: "success" });
}

trackPending();
