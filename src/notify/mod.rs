//! Email notification: transports, message rendering, the one outbox worker that sends
//! alert notices and DSMB report emails alike.
//!
//! notify depends on the configuration's parsed settings, never the other way round.

pub mod message;
pub mod render;
mod smtp;
mod worker;

pub use smtp::{transport, Mailer, SendError, SmtpSettings, TlsMode};
pub use worker::{Outbox, Pass};

use crate::config::{Config, EmailSettings};

/// The mailer the email settings ask for: SMTP, or .eml files in the outbox folder.
pub fn mailer(email: &EmailSettings) -> anyhow::Result<Mailer> {
    match &email.smtp {
        Some(settings) => Ok(Mailer::Smtp(transport(settings, email.smtp_timeout)?)),
        None => Mailer::files(&email.outbox_dir),
    }
}

/// The domain for Message-IDs: the sender's domain, parsed once with the configuration.
/// (Adapter for daemon.rs: `config.email.message_domain()` says the same.)
pub fn message_domain(config: &Config) -> String {
    config.email.message_domain().to_string()
}
