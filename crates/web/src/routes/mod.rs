pub mod admin;
pub mod docs;
pub mod health;
pub mod resources;
pub mod sessions;
pub mod tasks;
pub mod unsubscribe;
pub mod users;
