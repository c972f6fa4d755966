//! Screenshot capture with the system's headless Chromium, driven over the DevTools protocol
//! (`chromiumoxide`).
//!
//! - **One browser per worker process**, launched on the first capture (a process that never
//!   captures never starts Chromium) and launched again when it died (its DevTools connection
//!   ended, or opening a tab failed). Each launch gets a fresh profile folder, removed with it.
//! - **A bounded number of tabs**: `screenshots.max_pages` captures at once; more wait for a tab.
//! - **A deadline per capture** (`screenshots.timeout_secs`) covering the launch, the page load and
//!   the screenshot; the tab is closed whatever happens.
//! - A PNG of the viewport (`screenshots.viewport_width` × `viewport_height`), not the full page.
//!
//! **SSRF guard** (the same rules as the availability checker, `monitor.allow_private_targets` and
//! `monitor.allowed_hosts`), in three layers:
//! 1. Before the browser is involved, the URL's scheme is checked and its host resolved; any
//!    loopback/private/link-local/… address refuses the capture.
//! 2. **The proxy enforces.** Chromium reaches the network only through an in-process forward
//!    proxy ([`crate::proxy`], one per browser, on 127.0.0.1; `--proxy-bypass-list=<-loopback>`
//!    so loopback goes through it too). The proxy resolves every name itself through the
//!    guarded resolution ([`crate::guard`]) and connects to exactly the address it checked, for
//!    plain requests, CONNECT tunnels (https, wss) and WebSocket upgrades alike: a name that
//!    answers a public address first and a private one later (DNS rebinding) gains nothing, and
//!    WebSockets are checked like any request. WebRTC's non-proxied UDP is switched off by a flag.
//! 3. **The `Fetch` domain reports.** Every request the page makes — the document, each redirect
//!    hop, sub-resources, in-process frames — is also paused by the DevTools `Fetch` domain and
//!    checked before it continues. Alone it was not enough (it pauses requests, not WebSockets
//!    nor connections Chromium opens ahead of requests: a page whose image, frame and fetch
//!    were all refused still reached the private address), and with the proxy it is redundant
//!    for safety, but not for the result: a refused document or redirect hop would show the proxy's 403 as the
//!    page and be captured; here it is failed with its reason, so the capture ends as `Blocked`
//!    (dead-lettered, not retried), and other schemes are refused before any connection.
//!    Site isolation is switched off so that cross-site frames stay in the page's own session,
//!    where their requests are paused too.
//!
//! **Not covered**: the browser's sandbox is off (`--no-sandbox`, needed as root and in most
//! containers), so the container is the isolation boundary for a compromised renderer, which
//! could also open sockets without the proxy. Running capture workers where the network itself
//! stops them from reaching internal services (an egress firewall, a separate network
//! namespace) remains the stronger setup.

use crate::guard::{is_forbidden, Guard};
use crate::proxy::{GuardProxy, Limits};
use chromiumoxide::browser::{Browser, BrowserConfig};
use chromiumoxide::cdp::browser_protocol::fetch::{
    ContinueRequestParams, EventRequestPaused, FailRequestParams,
};
use chromiumoxide::cdp::browser_protocol::network::{ErrorReason, ResourceType};
use chromiumoxide::cdp::browser_protocol::page::{CaptureScreenshotFormat, FrameId};
use chromiumoxide::handler::viewport::Viewport;
use chromiumoxide::page::ScreenshotParams;
use chromiumoxide::Page;
use futures_util::StreamExt;
use pulseboard_config::{Monitor, Screenshots};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, Semaphore};

/// Where Chromium is looked for when `screenshots.chromium_path` is empty.
const CANDIDATES: &[&str] = &[
    "/usr/bin/chromium",
    "chromium",
    "chromium-browser",
    "google-chrome",
    "google-chrome-stable",
];

/// The Chromium executable: the configured path or command name, or the first of [`CANDIDATES`]
/// found. None when there is none (captures are then refused with 503).
pub fn find_chromium(configured: &str) -> Option<PathBuf> {
    let configured = configured.trim();
    if !configured.is_empty() {
        return resolve_executable(configured);
    }
    CANDIDATES.iter().find_map(|c| resolve_executable(c))
}

fn resolve_executable(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        return is_executable(&p).then_some(p);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    match std::fs::metadata(p) {
        #[cfg(unix)]
        Ok(m) => {
            use std::os::unix::fs::PermissionsExt;
            m.is_file() && m.permissions().mode() & 0o111 != 0
        }
        #[cfg(not(unix))]
        Ok(m) => m.is_file(),
        Err(_) => false,
    }
}

/// Why a capture produced no image.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// Chromium is not installed (or not where `screenshots.chromium_path` says).
    #[error("Chromium is not installed: {0}")]
    NoChromium(String),
    /// The SSRF guard refused the target.
    #[error("blocked: {0}")]
    Blocked(String),
    /// The page could not be loaded (DNS, connection, TLS, a refused redirect…).
    #[error("the page could not be loaded: {0}")]
    Navigation(String),
    #[error("the capture took longer than {0:?}")]
    Timeout(Duration),
    /// The browser failed (launch, crash, protocol); a later attempt relaunches it.
    #[error("browser error: {0}")]
    Browser(String),
}

impl CaptureError {
    /// Whether trying again later can help (the job is retried) or not (it is dead-lettered).
    pub fn is_transient(&self) -> bool {
        matches!(self, CaptureError::Timeout(_) | CaptureError::Browser(_))
    }
}

/// Checks a target before it is loaded: scheme and literal IPs (the guard's rules), then every
/// address the host resolves to. Err is the reason.
pub async fn check_target(guard: &Guard, url: &url::Url) -> Result<(), String> {
    guard.check_url(url).map_err(|b| {
        b.to_string()
            .trim_start_matches("pulseboard-guard: ")
            .to_owned()
    })?;
    let Some(url::Host::Domain(host)) = url.host() else {
        return Ok(()); // a literal IP, checked above
    };
    if guard.host_allowed(host) {
        return Ok(());
    }
    let port = url.port_or_known_default().unwrap_or(80);
    let addrs: Vec<_> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|_| format!("cannot resolve {host}"))?
        .collect();
    if addrs.is_empty() {
        return Err(format!("cannot resolve {host}"));
    }
    if let Some(a) = addrs.iter().find(|a| is_forbidden(a.ip())) {
        return Err(format!(
            "{host} resolves to {}, a private or local address",
            a.ip()
        ));
    }
    Ok(())
}

/// The running browser of this process.
struct Running {
    browser: Browser,
    /// Drives the DevTools connection; it ends when the browser goes away.
    handler: tokio::task::JoinHandle<()>,
    profile: PathBuf,
    pid: Option<u32>,
    /// The browser's way out; stops (with every connection through it) when dropped.
    _proxy: GuardProxy,
}

impl Running {
    fn alive(&self) -> bool {
        !self.handler.is_finished()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // Kill the browser now (its own drop would too, later), stop the connection task, and
        // remove the profile once the browser's processes are gone.
        self.handler.abort();
        let exited = matches!(self.browser.try_wait(), Ok(Some(_)));
        if exited {
            let _ = std::fs::remove_dir_all(&self.profile);
            return;
        }
        if let Some(child) = self.browser.get_mut_child() {
            let _ = child.as_mut_inner().start_kill();
        }
        let profile = self.profile.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(2));
            let _ = std::fs::remove_dir_all(profile);
        });
    }
}

/// Takes screenshots. One per process (it owns the browser and the tab limit).
pub struct Capturer {
    settings: Screenshots,
    guard: Arc<Guard>,
    browser: Mutex<Option<Arc<Running>>>,
    tabs: Semaphore,
    timeout: Duration,
}

impl std::fmt::Debug for Capturer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capturer")
            .field("settings", &self.settings)
            .finish()
    }
}

impl Capturer {
    pub fn new(settings: &Screenshots, monitor: &Monitor) -> Self {
        Self {
            guard: Arc::new(Guard::from_config(monitor)),
            tabs: Semaphore::new(settings.max_pages.max(1)),
            timeout: Duration::from_secs(settings.timeout_secs.max(1)),
            settings: settings.clone(),
            browser: Mutex::new(None),
        }
    }

    /// The Chromium this capturer would launch, if installed.
    pub fn chromium(&self) -> Option<PathBuf> {
        find_chromium(&self.settings.chromium_path)
    }

    /// A PNG of `url` in the configured viewport.
    pub async fn capture(&self, url: &str) -> Result<Vec<u8>, CaptureError> {
        let target = url::Url::parse(url)
            .map_err(|e| CaptureError::Navigation(format!("not a URL ({e})")))?;
        check_target(&self.guard, &target)
            .await
            .map_err(CaptureError::Blocked)?;
        let _tab = self.tabs.acquire().await.expect("never closed");
        // The deadline starts once a tab is ours: waiting for one is not the page's fault.
        let deadline = Instant::now() + self.timeout;
        let left = || deadline.saturating_duration_since(Instant::now());
        let timed_out = || CaptureError::Timeout(self.timeout);

        let running = tokio::time::timeout(left(), self.running())
            .await
            .map_err(|_| timed_out())??;
        let page = match tokio::time::timeout(left(), running.browser.new_page("about:blank")).await
        {
            Ok(Ok(page)) => page,
            // A browser that cannot open a tab (in time) is as good as dead: start over next time.
            Ok(Err(e)) => {
                self.discard(&running).await;
                return Err(CaptureError::Browser(format!("cannot open a tab: {e}")));
            }
            Err(_) => {
                self.discard(&running).await;
                return Err(timed_out());
            }
        };
        let shot = tokio::time::timeout(left(), self.shoot(&page, &target)).await;
        // Always close the tab, even after a timeout (its future was dropped, not the tab).
        let _ = tokio::time::timeout(Duration::from_secs(5), page.close()).await;
        shot.map_err(|_| timed_out())?
    }

    /// Loads the page with every request checked by the guard, then takes the screenshot.
    async fn shoot(&self, page: &Page, target: &url::Url) -> Result<Vec<u8>, CaptureError> {
        // Subscribed before the navigation is sent (same channel, so in order): no request of
        // this page can be paused before the listener exists.
        let paused = page
            .event_listener::<EventRequestPaused>()
            .await
            .map_err(|e| CaptureError::Browser(e.to_string()))?;
        let main_frame = page
            .mainframe()
            .await
            .map_err(|e| CaptureError::Browser(e.to_string()))?;
        let blocked = Arc::new(std::sync::Mutex::new(None::<String>));
        let gatekeeper = tokio::spawn(gatekeeper(
            page.clone(),
            paused,
            self.guard.clone(),
            main_frame,
            blocked.clone(),
        ));
        let loaded = page.goto(target.as_str()).await;
        // The page's own document (or a redirect hop to it) refused by the guard: whatever the
        // navigation reports, there is nothing of the target to show (only Chromium's error page).
        let refused = blocked.lock().expect("blocked lock").clone();
        let result = match (loaded, refused) {
            (_, Some(reason)) => Err(CaptureError::Blocked(reason)),
            (Ok(_), None) => {
                let params = ScreenshotParams::builder()
                    .format(CaptureScreenshotFormat::Png)
                    .build();
                page.screenshot(params)
                    .await
                    .map_err(|e| CaptureError::Browser(format!("screenshot failed: {e}")))
            }
            (Err(e), None) => Err(CaptureError::Navigation(e.to_string())),
        };
        gatekeeper.abort();
        result
    }

    /// The browser, launched if there is none or it died.
    async fn running(&self) -> Result<Arc<Running>, CaptureError> {
        let mut slot = self.browser.lock().await;
        if let Some(r) = slot.as_ref() {
            if r.alive() {
                return Ok(r.clone());
            }
            tracing::warn!("the capture browser died; launching it again");
        }
        *slot = None;
        let running = Arc::new(self.launch().await?);
        *slot = Some(running.clone());
        Ok(running)
    }

    async fn discard(&self, running: &Arc<Running>) {
        let mut slot = self.browser.lock().await;
        if slot.as_ref().is_some_and(|r| Arc::ptr_eq(r, running)) {
            *slot = None;
        }
    }

    async fn launch(&self) -> Result<Running, CaptureError> {
        let exe = self.chromium().ok_or_else(|| {
            CaptureError::NoChromium(if self.settings.chromium_path.trim().is_empty() {
                format!(
                    "none of {} found (set screenshots.chromium_path)",
                    CANDIDATES.join(", ")
                )
            } else {
                format!(
                    "screenshots.chromium_path = {} is not an executable",
                    self.settings.chromium_path
                )
            })
        })?;
        let profile = std::env::temp_dir().join(format!(
            "pulseboard-chromium-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        let proxy = GuardProxy::start(
            self.guard.clone(),
            Limits {
                connect: self.timeout.min(Duration::from_secs(10)),
                // Chromium keeps connections for later pages; none outlives two captures' time.
                lifetime: (self.timeout * 2).max(Duration::from_secs(60)),
            },
        )
        .await
        .map_err(|e| CaptureError::Browser(format!("cannot start the capture proxy: {e}")))?;
        let (w, h) = (self.settings.viewport_width, self.settings.viewport_height);
        let config = BrowserConfig::builder()
            .chrome_executable(&exe)
            .user_data_dir(&profile)
            .no_sandbox()
            .window_size(w, h)
            .viewport(Viewport {
                width: w,
                height: h,
                device_scale_factor: Some(1.0),
                ..Viewport::default()
            })
            .respect_https_errors()
            // Every request of every page is paused until the gatekeeper lets it go.
            .enable_request_intercept()
            .launch_timeout(self.timeout)
            .request_timeout(self.timeout)
            // (Keys without their leading dashes; values of a repeated key are merged.)
            .args([
                "disable-gpu",
                "disable-background-networking",
                "disable-component-update",
                "disable-site-isolation-trials",
                "deny-permission-prompts",
                "no-default-browser-check",
            ])
            .arg((
                "disable-features",
                &["IsolateOrigins", "site-per-process", "MediaRouter"][..],
            ))
            .arg(("force-webrtc-ip-handling-policy", "disable_non_proxied_udp"))
            // Every connection through the guarding proxy, loopback included.
            .arg(("proxy-server", proxy.url().as_str()))
            .arg(("proxy-bypass-list", "<-loopback>"))
            .build()
            .map_err(CaptureError::Browser)?;
        let (mut browser, mut handler) = Browser::launch(config).await.map_err(|e| {
            let _ = std::fs::remove_dir_all(&profile);
            CaptureError::Browser(format!("cannot launch {}: {e}", exe.display()))
        })?;
        let handler = tokio::spawn(async move {
            // Messages the protocol types do not know are skipped by the handler itself, so an
            // error is the connection failing (the browser died). The handler would then wait
            // forever rather than end: stop here, which marks the browser dead.
            while let Some(event) = handler.next().await {
                if let Err(e) = event {
                    tracing::warn!(error = %e, "capture browser connection lost");
                    break;
                }
            }
        });
        let pid = browser.get_mut_child().and_then(|c| c.as_mut_inner().id());
        tracing::info!(chromium = %exe.display(), pid, proxy = %proxy.addr(), "capture browser launched");
        Ok(Running {
            browser,
            handler,
            profile,
            pid,
            _proxy: proxy,
        })
    }

    /// The process id of the running browser, if one is running (diagnostics, tests).
    pub async fn browser_pid(&self) -> Option<u32> {
        self.browser.lock().await.as_ref().and_then(|r| r.pid)
    }

    /// Closes the browser (worker shutdown). A later capture would launch it again.
    pub async fn shutdown(&self) {
        let Some(running) = self.browser.lock().await.take() else {
            return;
        };
        if let Ok(mut running) = Arc::try_unwrap(running) {
            let closed = tokio::time::timeout(Duration::from_secs(5), async {
                running.browser.close().await.ok()?;
                running.browser.wait().await.ok()
            })
            .await;
            if !matches!(closed, Ok(Some(_))) {
                let _ = running.browser.kill().await;
            }
            tracing::info!("capture browser closed");
        }
        // Still in use by a capture: it is killed when that capture lets go of it.
    }
}

/// Lets each paused request of a page continue, or fails it when the guard refuses its target.
/// A refused document of the main frame (the page or a redirect hop) is kept in `blocked`; a
/// refused sub-resource or frame only leaves a hole in the picture.
async fn gatekeeper(
    page: Page,
    mut paused: chromiumoxide::listeners::EventStream<EventRequestPaused>,
    guard: Arc<Guard>,
    main_frame: Option<FrameId>,
    blocked: Arc<std::sync::Mutex<Option<String>>>,
) {
    // Verdicts per scheme://host:port for this page (one lookup per host).
    let mut verdicts: HashMap<String, Result<(), String>> = HashMap::new();
    while let Some(ev) = paused.next().await {
        let raw = &ev.request.url;
        let verdict = match url::Url::parse(raw) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {
                let origin = u.origin().ascii_serialization();
                match verdicts.get(&origin) {
                    Some(v) => v.clone(),
                    None => {
                        let v = check_target(&guard, &u).await;
                        verdicts.insert(origin, v.clone());
                        v
                    }
                }
            }
            // data: and blob: never reach here; anything else has no business loading.
            Ok(u) => Err(format!("scheme {}", u.scheme())),
            Err(_) => Err("a malformed URL".to_owned()),
        };
        let sent = match verdict {
            Ok(()) => page
                .execute(ContinueRequestParams::new(ev.request_id.clone()))
                .await
                .map(|_| ()),
            Err(reason) => {
                tracing::warn!(url = %raw, reason = %reason, "capture: request blocked");
                let is_page = ev.resource_type == ResourceType::Document
                    && main_frame.as_ref().is_none_or(|f| *f == ev.frame_id);
                if is_page {
                    blocked
                        .lock()
                        .expect("blocked lock")
                        .get_or_insert_with(|| format!("{raw}: {reason}"));
                }
                page.execute(FailRequestParams::new(
                    ev.request_id.clone(),
                    ErrorReason::BlockedByClient,
                ))
                .await
                .map(|_| ())
            }
        };
        if let Err(e) = sent {
            tracing::debug!(error = %e, "capture: answering a paused request failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nothing_where_nothing_is() {
        assert_eq!(find_chromium("/nonexistent/chromium"), None);
        assert_eq!(find_chromium("no-such-browser-anywhere"), None);
        // A file counts only when it is executable.
        let dir =
            std::env::temp_dir().join(format!("pb-chromium-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let exe = dir.join("chromium");
        std::fs::write(&exe, "#!/bin/sh\n").unwrap();
        let path = exe.to_str().unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert_eq!(find_chromium(path), None);
            std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        assert_eq!(find_chromium(path), Some(exe.clone()));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn the_guard_refuses_private_targets_before_the_browser() {
        let guard = Guard::default();
        for url in [
            "http://127.0.0.1:8080/",
            "http://[::1]/",
            "http://169.254.169.254/latest/meta-data",
            "http://localhost/",
            "file:///etc/passwd",
        ] {
            let u = url::Url::parse(url).unwrap();
            assert!(check_target(&guard, &u).await.is_err(), "{url}");
        }
        let open = Guard {
            allow_private: true,
            allowed_hosts: vec![],
        };
        let u = url::Url::parse("http://localhost:1/").unwrap();
        assert!(check_target(&open, &u).await.is_ok());
        let named = Guard {
            allow_private: false,
            allowed_hosts: vec!["localhost".into()],
        };
        assert!(check_target(&named, &u).await.is_ok());
    }
}
