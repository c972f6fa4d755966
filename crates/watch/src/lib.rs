//! Watch's services, built once per process and shared by the web handlers and the job handlers:
//! the availability [`checker::Checker`] (with the SSRF guard every outbound request passes) and
//! screenshot [`capture::Capturer`] (Chromium behind the guarded [`proxy`]).

pub mod capture;
pub mod checker;
pub mod proxy;
