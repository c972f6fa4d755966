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
    /// Screenshot images (local folder or S3), the same store the workers use.
    pub blobs: pulseboard_storage::blobs::Blobs,
}
