//! Mail bodies rendered from the templates in `crates/mail/templates/` (compiled into the binary),
//! in the recipient's language. HTML templates escape every value.

use minijinja::{AutoEscape, Environment};
use serde::Serialize;
use std::sync::OnceLock;

const TEMPLATES: &[(&str, &str)] = &[
    (
        "welcome.en.txt",
        include_str!("../templates/welcome.en.txt"),
    ),
    (
        "welcome.en.html",
        include_str!("../templates/welcome.en.html"),
    ),
    (
        "welcome.ru.txt",
        include_str!("../templates/welcome.ru.txt"),
    ),
    (
        "welcome.ru.html",
        include_str!("../templates/welcome.ru.html"),
    ),
    ("digest.en.txt", include_str!("../templates/digest.en.txt")),
    (
        "digest.en.html",
        include_str!("../templates/digest.en.html"),
    ),
    ("digest.ru.txt", include_str!("../templates/digest.ru.txt")),
    (
        "digest.ru.html",
        include_str!("../templates/digest.ru.html"),
    ),
];

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".html") {
                AutoEscape::Html
            } else {
                AutoEscape::None
            }
        });
        env.set_keep_trailing_newline(true);
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .expect("mail templates are valid");
        }
        env
    })
}

/// The languages mail is written in; anything else falls back to English.
pub fn language(locale: &str) -> &'static str {
    if locale.starts_with("ru") {
        "ru"
    } else {
        "en"
    }
}

/// Renders `<name>.<lang>.txt` and `.html` with the same context.
pub fn render(name: &str, locale: &str, ctx: impl Serialize) -> Result<(String, String), String> {
    let lang = language(locale);
    let ctx = minijinja::Value::from_serialize(&ctx);
    let one = |ext: &str| {
        env()
            .get_template(&format!("{name}.{lang}.{ext}"))
            .and_then(|t| t.render(&ctx))
            .map_err(|e| format!("rendering {name}.{lang}.{ext}: {e}"))
    };
    Ok((one("txt")?, one("html")?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn html_escapes_and_text_does_not() {
        let (text, html) = render(
            "welcome",
            "en",
            json!({"email": "<b>@x.com", "app_url": "http://x/"}),
        )
        .unwrap();
        assert!(text.contains("<b>@x.com"));
        assert!(html.contains("&lt;b&gt;@x.com") && !html.contains("<b>@x.com"));
    }

    #[test]
    fn digest_lists_and_counts_in_both_languages() {
        let ctx = json!({"day": "2026-11-23", "done_count": 2, "done": ["a", "b"], "undone_count": 7,
                          "undone": ["c", "d", "e", "f", "g"], "app_url": "http://x/", "unsubscribe_url": "http://x/u"});
        let (text, _) = render("digest", "en", &ctx).unwrap();
        assert!(text.contains("Today you completed 2 tasks"), "{text}");
        assert!(text.contains("You have 7 undone tasks"), "{text}");
        assert!(text.contains("and 2 more"), "{text}");
        let (text, _) = render("digest", "ru-RU", &ctx).unwrap();
        assert!(text.contains("За сегодня вы выполнили задач: 2"), "{text}");
    }
}
