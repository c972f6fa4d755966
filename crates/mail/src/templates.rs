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
    (
        "alert_down.en.txt",
        include_str!("../templates/alert_down.en.txt"),
    ),
    (
        "alert_down.en.html",
        include_str!("../templates/alert_down.en.html"),
    ),
    (
        "alert_down.ru.txt",
        include_str!("../templates/alert_down.ru.txt"),
    ),
    (
        "alert_down.ru.html",
        include_str!("../templates/alert_down.ru.html"),
    ),
    (
        "alert_up.en.txt",
        include_str!("../templates/alert_up.en.txt"),
    ),
    (
        "alert_up.en.html",
        include_str!("../templates/alert_up.en.html"),
    ),
    (
        "alert_up.ru.txt",
        include_str!("../templates/alert_up.ru.txt"),
    ),
    (
        "alert_up.ru.html",
        include_str!("../templates/alert_up.ru.html"),
    ),
    (
        "alert_tls.en.txt",
        include_str!("../templates/alert_tls.en.txt"),
    ),
    (
        "alert_tls.en.html",
        include_str!("../templates/alert_tls.en.html"),
    ),
    (
        "alert_tls.ru.txt",
        include_str!("../templates/alert_tls.ru.txt"),
    ),
    (
        "alert_tls.ru.html",
        include_str!("../templates/alert_tls.ru.html"),
    ),
    (
        "channel_test.en.txt",
        include_str!("../templates/channel_test.en.txt"),
    ),
    (
        "channel_test.en.html",
        include_str!("../templates/channel_test.en.html"),
    ),
    (
        "channel_test.ru.txt",
        include_str!("../templates/channel_test.ru.txt"),
    ),
    (
        "channel_test.ru.html",
        include_str!("../templates/channel_test.ru.html"),
    ),
    (
        "channel_confirm.en.txt",
        include_str!("../templates/channel_confirm.en.txt"),
    ),
    (
        "channel_confirm.en.html",
        include_str!("../templates/channel_confirm.en.html"),
    ),
    (
        "channel_confirm.ru.txt",
        include_str!("../templates/channel_confirm.ru.txt"),
    ),
    (
        "channel_confirm.ru.html",
        include_str!("../templates/channel_confirm.ru.html"),
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

    #[test]
    fn alerts_say_why_in_both_languages_and_escape_the_url_in_html() {
        let ctx = |status: Option<i64>, kind: Option<&str>| {
            json!({"url": "https://x.test/?a=1&b=<2>", "status_code": status, "error_kind": kind,
                   "checked_at": "2026-11-30 03:00 UTC", "link": "http://app/#/resources/u"})
        };
        let (text, html) = render("alert_down", "en", ctx(Some(503), None)).unwrap();
        assert!(
            text.starts_with(
                "https://x.test/?a=1&b=<2> is down (status 503), checked at 2026-11-30 03:00 UTC."
            ),
            "{text}"
        );
        assert!(text.contains("http://app/#/resources/u"), "{text}");
        assert!(
            html.contains("a=1&amp;b=&lt;2&gt;") && !html.contains("b=<2>"),
            "{html}"
        );
        let (text, _) = render("alert_down", "en", ctx(None, Some("timeout"))).unwrap();
        assert!(text.contains("(no answer in time)"), "{text}");
        // A kind the template does not know yet still says what it is.
        let (text, _) = render("alert_down", "en", ctx(None, Some("teapot"))).unwrap();
        assert!(text.contains("(error: teapot)"), "{text}");
        let (text, _) = render("alert_down", "en", ctx(None, None)).unwrap();
        assert!(text.contains("(no response)"), "{text}");
        let (text, html) = render("alert_down", "ru", ctx(None, Some("dns"))).unwrap();
        assert!(text.contains("недоступен (имя не найдено в DNS)"), "{text}");
        assert!(
            html.contains("lang=\"ru\"") && html.contains("Недоступен:"),
            "{html}"
        );
        let (text, _) = render("alert_up", "ru", ctx(Some(200), None)).unwrap();
        assert!(text.contains("снова доступен (статус 200)"), "{text}");
        let (text, html) = render("alert_up", "en", ctx(Some(200), None)).unwrap();
        assert!(text.contains("is available again (status 200)"), "{text}");
        assert!(html.contains("Back up:"), "{html}");
    }

    #[test]
    fn channel_mails_render_in_both_languages_and_escape_in_html() {
        // An alert through a channel names the channel instead of the account setting.
        let ctx = json!({"url": "https://x.test/", "status_code": null, "error_kind": "timeout",
                         "checked_at": "2026-11-30 06:00:00 (Europe/Moscow)",
                         "link": "http://app/#/resources/u", "channel": "<b>ops</b>"});
        let (text, html) = render("alert_down", "ru", &ctx).unwrap();
        assert!(text.contains("недоступен (нет ответа вовремя)"), "{text}");
        assert!(
            text.contains("через канал уведомлений Pulseboard «<b>ops</b>»"),
            "{text}"
        );
        assert!(!text.contains("в настройках"), "{text}");
        assert!(
            html.contains("«&lt;b&gt;ops&lt;") && !html.contains("<b>ops"),
            "{html}"
        );
        let (text, _) = render("alert_up", "en", &ctx).unwrap();
        assert!(
            text.contains("notification channel \"<b>ops</b>\""),
            "{text}"
        );
        assert!(!text.contains("your settings"), "{text}");

        let ctx = json!({"url": "https://x.test/?a&b", "at": "2026-11-30 03:00:00 (UTC)",
                         "link": "http://app/#/resources/u", "channel": "Ops"});
        let (text, html) = render("alert_tls", "en", &ctx).unwrap();
        assert!(
            text.starts_with("The TLS certificate of https://x.test/?a&b expires soon (checked at 2026-11-30 03:00:00 (UTC))."),
            "{text}"
        );
        assert!(
            html.contains("?a&amp;b") && html.contains("lang=\"en\""),
            "{html}"
        );
        let (text, html) = render("alert_tls", "ru", &ctx).unwrap();
        assert!(
            text.starts_with("TLS-сертификат https://x.test/?a&b скоро истекает"),
            "{text}"
        );
        assert!(html.contains("Истекает TLS-сертификат"), "{html}");

        let ctx = json!({"channel": "A & B", "at": "2026-11-30 03:00:00 (UTC)"});
        let (text, html) = render("channel_test", "en", &ctx).unwrap();
        assert!(
            text.starts_with("Test notification from Pulseboard: the channel \"A & B\" works (2026-11-30 03:00:00 (UTC))."),
            "{text}"
        );
        assert!(html.contains("A &amp; B"), "{html}");
        let (text, _) = render("channel_test", "ru-RU", &ctx).unwrap();
        assert!(text.contains("канал «A & B» работает"), "{text}");

        let ctx =
            json!({"channel": "<b>x</b>", "link": "http://app/channels/7/confirm?t=ab&x=\"y"});
        let (text, html) = render("channel_confirm", "en", &ctx).unwrap();
        assert!(text.contains("(channel \"<b>x</b>\")"), "{text}");
        assert!(
            text.contains("\nhttp://app/channels/7/confirm?t=ab&x=\"y\n"),
            "{text}"
        );
        assert!(
            html.contains("&lt;b&gt;x&lt;") && !html.contains("<b>x"),
            "{html}"
        );
        // The link cannot break out of its attribute.
        assert!(
            html.contains("t=ab&amp;x=&quot;y") && !html.contains("x=\"y"),
            "{html}"
        );
        let (text, html) = render("channel_confirm", "ru", &ctx).unwrap();
        assert!(text.contains("откройте эту ссылку и подтвердите"), "{text}");
        assert!(html.contains("lang=\"ru\""), "{html}");
    }
}
