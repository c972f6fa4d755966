pub mod admin;
pub mod docs;
pub mod health;
pub mod sessions;
pub mod tasks;
pub mod users;
