//! The emails about a subscription itself: the confirmation link, and the note to an
//! address that is already subscribed. Both bodies come from `templates/email`.

use askama::Template;

use super::mailer::{Email, ListHeaders, MailError, Mailer};
use crate::domain::Preferences;
use crate::domain::token::Links;
use crate::store::Subscriber;

#[derive(Template)]
#[template(path = "email/confirm.html")]
struct ConfirmHtml<'a> {
    email: &'a str,
    summary: &'a str,
    confirm_url: &'a str,
    unsubscribe_url: &'a str,
}

#[derive(Template)]
#[template(path = "email/confirm.txt")]
struct ConfirmText<'a> {
    email: &'a str,
    summary: &'a str,
    confirm_url: &'a str,
    unsubscribe_url: &'a str,
}

#[derive(Template)]
#[template(path = "email/manage.html")]
struct ManageHtml<'a> {
    email: &'a str,
    preferences_url: &'a str,
    unsubscribe_url: &'a str,
}

#[derive(Template)]
#[template(path = "email/manage.txt")]
struct ManageText<'a> {
    email: &'a str,
    preferences_url: &'a str,
    unsubscribe_url: &'a str,
}

/// "every weekday at 08:00 (Europe/Berlin), up to 15 papers matching your 3 queries".
pub fn describe(p: &Preferences) -> String {
    let what = match p.queries.lines().len() {
        0 => "the most upvoted new papers".to_string(),
        1 => "papers matching your query".to_string(),
        n => format!("papers matching your {n} queries"),
    };
    format!(
        "{} at {:02}:00 ({}), up to {} {what}",
        p.frequency,
        p.send_hour.get(),
        p.timezone.name(),
        p.max_papers.get()
    )
}

fn list_headers(links: &Links, subscriber: &Subscriber) -> ListHeaders {
    ListHeaders {
        id: format!("paperboy digest <digest.{}>", links.host()),
        unsubscribe_url: links.unsubscribe(subscriber.id, &subscriber.link_key),
        bulk: false,
        feedback_id: None,
    }
}

fn render(t: &impl Template) -> Result<String, MailError> {
    t.render()
        .map_err(|e| MailError::build_because("template", e))
}

/// The email that asks a reader to confirm the settings `asked` for, carrying the
/// confirmation `token`.
pub fn confirmation(
    mailer: &Mailer,
    links: &Links,
    subscriber: &Subscriber,
    asked: &Preferences,
    token: &str,
) -> Result<Email, MailError> {
    let summary = describe(asked);
    let confirm_url = links.confirm(token);
    let unsubscribe_url = links.unsubscribe(subscriber.id, &subscriber.link_key);
    let email = subscriber.email.as_str();
    Ok(Email {
        to: subscriber.email.clone(),
        subject: "Confirm your paperboy digest".into(),
        text: render(&ConfirmText {
            email,
            summary: &summary,
            confirm_url: &confirm_url,
            unsubscribe_url: &unsubscribe_url,
        })?,
        html: render(&ConfirmHtml {
            email,
            summary: &summary,
            confirm_url: &confirm_url,
            unsubscribe_url: &unsubscribe_url,
        })?,
        message_id: mailer.new_message_id(),
        list: Some(list_headers(links, subscriber)),
    })
}

/// The email to an address that is already subscribed: a link to its settings.
pub fn already_subscribed(
    mailer: &Mailer,
    links: &Links,
    subscriber: &Subscriber,
) -> Result<Email, MailError> {
    let preferences_url = links.preferences(subscriber.id, &subscriber.link_key);
    let unsubscribe_url = links.unsubscribe(subscriber.id, &subscriber.link_key);
    let email = subscriber.email.as_str();
    Ok(Email {
        to: subscriber.email.clone(),
        subject: "Your paperboy digest settings".into(),
        text: render(&ManageText {
            email,
            preferences_url: &preferences_url,
            unsubscribe_url: &unsubscribe_url,
        })?,
        html: render(&ManageHtml {
            email,
            preferences_url: &preferences_url,
            unsubscribe_url: &unsubscribe_url,
        })?,
        message_id: mailer.new_message_id(),
        list: Some(list_headers(links, subscriber)),
    })
}
