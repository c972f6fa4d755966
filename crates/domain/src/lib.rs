//! Domain types that parse rather than validate.
//!
//! A value of one of these types is valid by construction: handlers parse raw input into them at the
//! edge, and everything past the edge (storage, jobs, mail) can rely on them.

mod error;
mod resource;
mod task;
mod time;
mod user;

pub use error::FieldError;
pub use resource::ResourceUrl;
pub use task::{TaskDescription, TaskPosition, TaskTitle};
pub use time::{Timestamp, UnixMillis};
pub use user::{Email, Password, Role};
