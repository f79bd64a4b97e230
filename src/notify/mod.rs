//! Email notification: transports, message rendering, the outbox worker.

pub mod message;
pub mod render;
mod smtp;
mod worker;

pub use smtp::{Mailer, SendError, SmtpSettings, TlsMode};
pub use worker::{Outbox, Pass};

use crate::config::Config;
use std::time::Duration;

/// The mailer the configuration asks for: SMTP, or .eml files in the outbox folder.
pub fn mailer(config: &Config) -> anyhow::Result<Mailer> {
    match &config.email.smtp_url {
        Some(url) => {
            let settings = SmtpSettings::parse(url).map_err(anyhow::Error::msg)?;
            Ok(Mailer::Smtp(settings.transport(Duration::from_secs(config.email.smtp_timeout_secs))?))
        }
        None => Mailer::files(&config.email.outbox_dir),
    }
}

/// The domain for Message-IDs: the sender's domain.
pub fn message_domain(config: &Config) -> String {
    config
        .email
        .from
        .parse::<lettre::message::Mailbox>()
        .map(|m| m.email.domain().to_string())
        .unwrap_or_else(|_| "vigil.invalid".into())
}
