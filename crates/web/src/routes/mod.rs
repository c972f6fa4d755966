pub mod account;
pub mod admin;
pub mod capture;
pub mod channels;
pub mod checks;
pub mod docs;
pub mod feed;
pub mod health;
pub mod imports;
pub mod logs;
pub mod resources;
pub mod screenshots;
pub mod sessions;
pub mod tasks;
pub mod tokens;
pub mod unsubscribe;
pub mod upload;
pub mod users;
pub mod watch_view;

/// The small server-rendered page a signed mail link opens (unsubscribe, confirming a channel's
/// address): no script, so it works in any mail client's browser and under the strict CSP.
pub(crate) fn link_page(body: &str) -> axum::response::Html<String> {
    axum::response::Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" \
         content=\"width=device-width, initial-scale=1\"><title>Pulseboard</title></head>\
         <body style=\"font-family: system-ui, sans-serif; max-width: 32rem; margin: 3rem auto; padding: 0 1rem\">\
         {body}</body></html>"
    ))
}
