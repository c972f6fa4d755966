//! Watch's services, built once per process and shared by the web handlers and the job handlers
//! (`jobs` keeps only the queue runtime and thin handlers that call into here):
//!
//! - [`guard`]: the SSRF guard every outbound request passes (one [`guard::Guard`] per process,
//!   from `monitor`, handed out by the checker);
//! - [`checker`]: the availability [`checker::Checker`] (connection pool and concurrency limits);
//! - [`capture`]: the screenshot [`capture::Capturer`] (one Chromium, behind the guarded
//!   [`proxy`]);
//! - [`import`]: ZIP imports of URLs, read defensively and inserted in batches.

pub mod alerts;
pub mod capture;
pub mod checker;
pub mod guard;
pub mod import;
pub mod proxy;
