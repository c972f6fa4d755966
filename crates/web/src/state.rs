use crate::auth::Keys;
use pulseboard_config::Config;
use pulseboard_jobs::Queue;
use pulseboard_storage::Db;
use std::sync::Arc;

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: Db,
    pub queue: Queue,
    pub keys: Arc<Keys>,
    /// Logins recently seen active (see [`crate::auth::Logins`]).
    pub logins: Arc<crate::auth::Logins>,
    /// Signs and checks links that act without a login (unsubscribe).
    pub signing_key: Arc<Vec<u8>>,
    /// Availability checks and the SSRF guard: the process's one checker, shared with the
    /// workers (its connection pool and concurrency limits hold across API and jobs).
    pub checker: Arc<pulseboard_watch::checker::Checker>,
    /// Screenshot images (local folder or S3), the same store the workers use.
    pub blobs: pulseboard_storage::blobs::Blobs,
    /// Bounded password hashing (logins, registrations).
    pub passwords: Arc<crate::auth::Passwords>,
    /// ZIP imports this process is receiving, per user (`http.imports_per_user`).
    pub uploading: Arc<crate::routes::imports::Uploading>,
    /// Asks for the first check of a new resource soon (one sweep for many additions).
    pub due_nudge: pulseboard_jobs::nudge::DueNudge,
    /// `http.trusted_proxies`, parsed: whose forwarding headers name the client.
    pub trusted_proxies: Arc<Vec<ipnet::IpNet>>,
}
