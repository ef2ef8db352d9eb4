//! `paperboy send-test-email ADDR`: one short message through the configured mailer, to
//! check the SMTP set-up end to end.

use crate::config::Settings;
use crate::delivery::{Mailer, Sent};
use crate::domain::EmailAddress;
use crate::email::Email;

use super::CliError;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to send the test message.
    address: String,
}

pub async fn run(settings: Settings, args: Args) -> Result<(), CliError> {
    let to = EmailAddress::parse(&args.address)?;
    let mailer = Mailer::from_settings(&settings)?;
    let email = Email {
        to: to.clone(),
        subject: "paperboy test email".into(),
        text: format!(
            "This is a test message from paperboy at {}.\n\nIf you can read it, mail from this instance reaches {to}.\n",
            settings.base_url
        ),
        html: format!(
            "<!DOCTYPE html><html><body><p>This is a test message from paperboy at {}.</p>\
             <p>If you can read it, mail from this instance reaches {}.</p></body></html>",
            html_escape::encode_text(&settings.base_url),
            html_escape::encode_text(to.as_str()),
        ),
        message_id: mailer.message_ids().next(),
        list: None,
    };
    match mailer.send(&email).await {
        Ok(Sent::Relay(reply)) => {
            say!(
                "sent to {to} via {} ({reply}), Message-ID <{}>",
                mailer.describe(),
                email.message_id
            );
            Ok(())
        }
        Ok(Sent::File(path)) => {
            say!(
                "no SMTP relay configured (PAPERBOY_SMTP_URL): the message was written to {}",
                path.display()
            );
            Ok(())
        }
        Err(e) => Err(CliError::Other(anyhow::Error::new(e).context(format!(
            "sending to {} via {}",
            to.masked(),
            mailer.describe()
        )))),
    }
}
