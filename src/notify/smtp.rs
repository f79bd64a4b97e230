//! The mail transports: SMTP built from the parsed settings, or .eml files in a folder,
//! and how a refusal is classed (retry later or give up).

pub use crate::config::{SmtpSettings, TlsMode};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::path::Path;
use std::time::Duration;

/// The SMTP transport the settings describe.
pub fn transport(
    settings: &SmtpSettings,
    timeout: Duration,
) -> anyhow::Result<AsyncSmtpTransport<Tokio1Executor>> {
    let tls_parameters = || -> anyhow::Result<TlsParameters> {
        let mut b = TlsParameters::builder(settings.host.clone());
        if let Some(ca) = &settings.ca_file {
            let pem = std::fs::read(ca)
                .map_err(|e| anyhow::anyhow!("cannot read SMTP CA file {}: {e}", ca.display()))?;
            b = b.add_root_certificate(Certificate::from_pem(&pem)?);
        }
        Ok(b.build_rustls()?)
    };
    let tls = match settings.tls {
        TlsMode::None => Tls::None,
        TlsMode::StartTls => Tls::Required(tls_parameters()?),
        TlsMode::Implicit => Tls::Wrapper(tls_parameters()?),
    };
    let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host)
        .port(settings.port)
        .tls(tls)
        .timeout(Some(timeout));
    if let Some((u, p)) = settings.credentials() {
        b = b.credentials(Credentials::new(u.to_string(), p.to_string()));
    }
    Ok(b.build())
}

/// Where alert emails go: a real SMTP server, or .eml files in a folder.
#[derive(Clone)]
pub enum Mailer {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Files(AsyncFileTransport<Tokio1Executor>),
}

/// Why a message was not delivered, and whether to try again.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("temporary failure: {0}")]
    Transient(String),
    #[error("permanent failure: {0}")]
    Permanent(String),
}

impl Mailer {
    pub fn files(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("cannot create outbox folder {}: {e}", dir.display()))?;
        Ok(Self::Files(AsyncFileTransport::<Tokio1Executor>::new(dir)))
    }

    pub async fn send(&self, message: Message) -> Result<(), SendError> {
        match self {
            Self::Smtp(t) => t.send(message).await.map(|_| ()).map_err(|e| {
                // 5xx is final; everything else (4xx, connection, TLS, timeouts) may pass later.
                if e.is_permanent() {
                    SendError::Permanent(e.to_string())
                } else {
                    SendError::Transient(e.to_string())
                }
            }),
            Self::Files(t) => {
                t.send(message).await.map(|_| ()).map_err(|e| SendError::Transient(e.to_string()))
            }
        }
    }
}
