//! SMTP settings from a URL, and the mail transport they make.
//!
//! `smtp://host:port` is plain SMTP and is accepted only for a loopback host (a local
//! relay or a test server); any other host must use `?tls=starttls` or `smtps://`.
//! Credentials may be in the URL (from the environment) or in `VIGIL_SMTP_PASSWORD`.

use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    None,
    StartTls,
    Implicit,
}

#[derive(Clone, PartialEq, Eq)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub user: Option<String>,
    password: Option<String>,
    /// Extra CA certificate (PEM) to trust, for a relay with an internal CA.
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl SmtpSettings {
    pub fn parse(url: &str) -> Result<Self, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("`{}` is not an smtp:// or smtps:// URL", redact(url)))?;
        let mut tls = match scheme {
            "smtp" => TlsMode::None,
            "smtps" => TlsMode::Implicit,
            _ => return Err(format!("unsupported scheme `{scheme}`: use smtp:// or smtps://")),
        };
        let (authority, query) = rest.split_once('?').map_or((rest, ""), |(a, q)| (a, q));
        let authority = authority.trim_end_matches('/');
        let (creds, hostport) = authority.rsplit_once('@').map_or((None, authority), |(c, h)| (Some(c), h));
        let (user, password) = match creds {
            Some(c) => {
                let (u, p) = c.split_once(':').map_or((c, None), |(u, p)| (u, Some(p)));
                (Some(percent_decode(u)), p.map(percent_decode))
            }
            None => (None, None),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p.parse::<u16>().map_err(|_| format!("bad port `{p}`"))?)),
            None => (hostport.to_string(), None),
        };
        if host.is_empty() {
            return Err("the SMTP URL names no host".into());
        }
        let mut ca_file = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("tls", "starttls")) => tls = TlsMode::StartTls,
                Some(("tls", "implicit")) => tls = TlsMode::Implicit,
                Some(("tls", "none")) => tls = TlsMode::None,
                Some(("ca", path)) => ca_file = Some(PathBuf::from(percent_decode(path))),
                _ => {
                    return Err(format!(
                        "unknown SMTP URL option `{pair}`: use tls=starttls|implicit|none or ca=PATH"
                    ))
                }
            }
        }
        if tls == TlsMode::None && !is_loopback(&host) {
            return Err(format!(
                "plain SMTP to `{host}` would send safety data unencrypted: use smtps:// or ?tls=starttls \
                 (plain smtp:// is accepted for loopback hosts only)"
            ));
        }
        let port = port.unwrap_or(match tls {
            TlsMode::Implicit => 465,
            TlsMode::StartTls => 587,
            TlsMode::None => 25,
        });
        let password = password.or_else(|| std::env::var("VIGIL_SMTP_PASSWORD").ok());
        Ok(Self { host, port, tls, user, password, ca_file })
    }

    pub fn transport(&self, timeout: Duration) -> anyhow::Result<AsyncSmtpTransport<Tokio1Executor>> {
        let tls_parameters = || -> anyhow::Result<TlsParameters> {
            let mut b = TlsParameters::builder(self.host.clone());
            if let Some(ca) = &self.ca_file {
                let pem = std::fs::read(ca)
                    .map_err(|e| anyhow::anyhow!("cannot read SMTP CA file {}: {e}", ca.display()))?;
                b = b.add_root_certificate(Certificate::from_pem(&pem)?);
            }
            Ok(b.build_rustls()?)
        };
        let tls = match self.tls {
            TlsMode::None => Tls::None,
            TlsMode::StartTls => Tls::Required(tls_parameters()?),
            TlsMode::Implicit => Tls::Wrapper(tls_parameters()?),
        };
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&self.host)
            .port(self.port)
            .tls(tls)
            .timeout(Some(timeout));
        if let (Some(u), Some(p)) = (&self.user, &self.password) {
            b = b.credentials(Credentials::new(u.clone(), p.clone()));
        }
        Ok(b.build())
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn redact(url: &str) -> String {
    crate::store::redact(url)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_plain_smtp_is_allowed() {
        let s = SmtpSettings::parse("smtp://127.0.0.1:2525").unwrap();
        assert_eq!((s.host.as_str(), s.port, s.tls), ("127.0.0.1", 2525, TlsMode::None));
    }

    #[test]
    fn remote_plain_smtp_is_refused() {
        assert!(SmtpSettings::parse("smtp://mail.example.org").unwrap_err().contains("unencrypted"));
        let s = SmtpSettings::parse("smtp://mail.example.org?tls=starttls").unwrap();
        assert_eq!((s.port, s.tls), (587, TlsMode::StartTls));
    }

    #[test]
    fn smtps_with_credentials() {
        let s = SmtpSettings::parse("smtps://alert%40trial.org:p%40ss@mail.example.org").unwrap();
        assert_eq!(s.user.as_deref(), Some("alert@trial.org"));
        assert_eq!(s.password.as_deref(), Some("p@ss"));
        assert_eq!((s.port, s.tls), (465, TlsMode::Implicit));
        assert!(!format!("{s:?}").contains("p@ss"));
    }

    #[test]
    fn bad_urls_are_refused() {
        assert!(SmtpSettings::parse("ftp://x").is_err());
        assert!(SmtpSettings::parse("smtp://127.0.0.1:notaport").is_err());
        assert!(SmtpSettings::parse("smtp://127.0.0.1?color=red").is_err());
        assert!(SmtpSettings::parse("127.0.0.1:25").is_err());
    }
}
