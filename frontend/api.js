// Thin client for the Pulseboard HTTP API.
//
// * Every request carries cookies (`credentials: "include"`), so the same code
//   works when the page and the API live on different origins.
// * A 401 on any call (except the login/registration calls themselves) triggers
//   one `POST /session/refresh`, then the call is retried once. Concurrent 401s
//   share a single refresh request, because refresh tokens rotate on every use
//   and presenting a rotated token twice would revoke the whole login.
// * Errors are thrown as ApiError with the server's `message`, `error` code and
//   per-field `details`. Network failures are ApiError with status 0.

const BASE = String(window.PULSEBOARD_API || "").trim().replace(/\/+$/, "");

/** Absolute (or same-origin relative) URL of an API path such as "/tasks". */
export function apiUrl(path) {
  return BASE + path;
}

/** WebSocket URL of an API path such as "/logs/stream". */
export function wsUrl(path) {
  const base = BASE ? new URL(BASE, location.href) : new URL(location.href);
  const proto = base.protocol === "https:" ? "wss:" : "ws:";
  const prefix = BASE ? base.pathname.replace(/\/+$/, "") : "";
  return `${proto}//${base.host}${prefix}${path}`;
}

export class ApiError extends Error {
  constructor(status, body, headers) {
    const message = body && typeof body.message === "string" ? body.message : "";
    super(message || (status ? `HTTP ${status}` : "Network error"));
    this.name = "ApiError";
    this.status = status;
    this.body = body || null;
    this.serverMessage = message;
    this.code = body && typeof body.error === "string" ? body.error : null;
    this.details = body && body.details && typeof body.details === "object" ? body.details : null;
    const ra = headers && typeof headers.get === "function" ? headers.get("Retry-After") : null;
    this.retryAfter = ra && /^\d+$/.test(ra.trim()) ? Number(ra.trim()) : null;
  }
  get isNetwork() {
    return this.status === 0;
  }
  get isNotFound() {
    return this.status === 404;
  }
}

// Calls whose 401 means "wrong credentials", not "session expired".
const NO_REFRESH = new Set(["POST /session", "POST /user", "POST /session/refresh", "DELETE /session"]);

const sessionLostListeners = new Set();
/** Called when a retried call still answers 401: the login is gone. */
export function onSessionLost(fn) {
  sessionLostListeners.add(fn);
  return () => sessionLostListeners.delete(fn);
}

let refreshPromise = null;
/** POST /session/refresh, shared by everyone who needs it right now. Resolves to true on success. */
export function refreshSession() {
  if (!refreshPromise) {
    refreshPromise = fetch(apiUrl("/session/refresh"), {
      method: "POST",
      credentials: "include",
      headers: { Accept: "application/json" },
    })
      .then((res) => res.ok)
      .catch(() => false)
      .finally(() => {
        // Let every caller waiting on this promise see it before a new one may start.
        setTimeout(() => {
          refreshPromise = null;
        }, 0);
      });
  }
  return refreshPromise;
}

async function parseBody(res) {
  if (res.status === 204 || res.status === 205) return null;
  let text = "";
  try {
    text = await res.text();
  } catch {
    return null;
  }
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null; // not JSON (e.g. an HTML error page from a proxy)
  }
}

async function send(path, init) {
  try {
    return await fetch(apiUrl(path), init);
  } catch (err) {
    if (err && err.name === "AbortError") throw err;
    if (init.keepalive) {
      // keepalive requests have a body size limit; retry as a normal request.
      try {
        return await fetch(apiUrl(path), { ...init, keepalive: false });
      } catch (err2) {
        if (err2 && err2.name === "AbortError") throw err2;
      }
    }
    throw new ApiError(0, null, null);
  }
}

/**
 * request("GET", "/tasks") → parsed JSON (or null for 204).
 * options: json (body to JSON-encode), body (raw body, e.g. FormData),
 *          signal, keepalive, refresh (default true).
 */
export async function request(method, path, options = {}) {
  const { json, body, signal, keepalive = false, refresh = true } = options;
  const headers = { Accept: "application/json" };
  const init = { method, credentials: "include", headers, signal, cache: "no-store" };
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  } else if (body !== undefined) {
    init.body = body;
  }
  if (keepalive && typeof init.body === "string" && init.body.length < 60000) init.keepalive = true;

  const key = `${method.toUpperCase()} ${path.split("?")[0].replace(/\/+$/, "") || "/"}`;
  let res = await send(path, init);
  if (res.status === 401 && refresh && !NO_REFRESH.has(key)) {
    if (await refreshSession()) res = await send(path, init);
    if (res.status === 401) {
      const data = await parseBody(res);
      for (const fn of sessionLostListeners) {
        try {
          fn();
        } catch (e) {
          console.error(e);
        }
      }
      throw new ApiError(401, data, res.headers);
    }
  }
  const data = await parseBody(res);
  if (!res.ok) throw new ApiError(res.status, data, res.headers);
  return data;
}

/**
 * Upload a FormData with XMLHttpRequest so that upload progress can be shown.
 * onProgress(fraction 0..1 or null when unknown). Resolves to the parsed body;
 * rejects with ApiError. Retries once after a refresh on 401.
 */
export function upload(path, formData, { onProgress, method = "POST" } = {}) {
  const once = () =>
    new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open(method, apiUrl(path));
      xhr.withCredentials = true;
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.addEventListener("progress", (e) => {
        if (onProgress) onProgress(e.lengthComputable && e.total ? e.loaded / e.total : null);
      });
      xhr.addEventListener("load", () => {
        let data = null;
        try {
          data = xhr.responseText ? JSON.parse(xhr.responseText) : null;
        } catch {
          data = null;
        }
        const headers = { get: (name) => xhr.getResponseHeader(name) };
        resolve({ status: xhr.status, data, headers });
      });
      xhr.addEventListener("error", () => reject(new ApiError(0, null, null)));
      xhr.addEventListener("abort", () => reject(new ApiError(0, null, null)));
      xhr.send(formData);
    });

  return (async () => {
    let res = await once();
    if (res.status === 401) {
      if (await refreshSession()) {
        if (onProgress) onProgress(0);
        res = await once();
      }
      if (res.status === 401) {
        for (const fn of sessionLostListeners) fn();
      }
    }
    if (res.status < 200 || res.status >= 300) throw new ApiError(res.status, res.data, res.headers);
    return res.data;
  })();
}
