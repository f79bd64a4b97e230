//! SMTP settings parsed from `email.smtp_url` (or `VIGIL_SMTP_URL`), once, at start.
//!
//! `smtp://host:port` is plain SMTP and is accepted only for a loopback host (a local
//! relay or a test server); any other host must use `?tls=starttls` or `smtps://`.
//! Credentials may be in the URL (from the environment) or in `VIGIL_SMTP_PASSWORD`.
//! The transport these settings make lives with the mailer (`notify`).

use std::path::PathBuf;

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

/// Why an SMTP URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SmtpUrlError {
    // What is echoed back never comes from where a password could be.
    #[error("the SMTP URL is not an smtp:// or smtps:// URL (smtp://user:password@host:port)")]
    NotAUrl,
    #[error(
        "the SMTP URL's user or password holds a character that must be percent-encoded \
         (`/` as %2F, `?` as %3F, `#` as %23, `@` as %40)"
    )]
    Unencoded,
    #[error("unsupported scheme `{0}`: use smtp:// or smtps://")]
    Scheme(String),
    #[error("bad port `{0}`")]
    Port(String),
    #[error("the SMTP URL names no host")]
    NoHost,
    #[error("unknown SMTP URL option `{0}`: use tls=starttls|implicit|none or ca=PATH")]
    Option(String),
    #[error(
        "plain SMTP to `{0}` would send safety data unencrypted: use smtps:// or ?tls=starttls \
         (plain smtp:// is accepted for loopback hosts only)"
    )]
    Unencrypted(String),
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
    /// Parses an SMTP URL. A password absent from the URL is taken from `fallback_password`
    /// (the caller reads `VIGIL_SMTP_PASSWORD`).
    pub fn parse(url: &str, fallback_password: Option<String>) -> Result<Self, SmtpUrlError> {
        let (scheme, rest) = url.split_once("://").ok_or(SmtpUrlError::NotAUrl)?;
        // The authority ends at the first `/`, `?` or `#`: an `@` after one means a password
        // with such a character, unencoded, which the messages below could echo.
        if rest.find(['/', '?', '#']).is_some_and(|end| rest[end..].contains('@')) {
            return Err(SmtpUrlError::Unencoded);
        }
        let mut tls = match scheme {
            "smtp" => TlsMode::None,
            "smtps" => TlsMode::Implicit,
            _ => return Err(SmtpUrlError::Scheme(scheme.to_string())),
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
            Some((h, p)) => {
                (h.to_string(), Some(p.parse::<u16>().map_err(|_| SmtpUrlError::Port(p.to_string()))?))
            }
            None => (hostport.to_string(), None),
        };
        if host.is_empty() {
            return Err(SmtpUrlError::NoHost);
        }
        let mut ca_file = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("tls", "starttls")) => tls = TlsMode::StartTls,
                Some(("tls", "implicit")) => tls = TlsMode::Implicit,
                Some(("tls", "none")) => tls = TlsMode::None,
                Some(("ca", path)) => ca_file = Some(PathBuf::from(percent_decode(path))),
                _ => return Err(SmtpUrlError::Option(pair.to_string())),
            }
        }
        if tls == TlsMode::None && !is_loopback(&host) {
            return Err(SmtpUrlError::Unencrypted(host));
        }
        let port = port.unwrap_or(match tls {
            TlsMode::Implicit => 465,
            TlsMode::StartTls => 587,
            TlsMode::None => 25,
        });
        let password = password.or(fallback_password);
        Ok(Self { host, port, tls, user, password, ca_file })
    }

    /// User and password, when both are known.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        Some((self.user.as_deref()?, self.password.as_deref()?))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Result<SmtpSettings, SmtpUrlError> {
        SmtpSettings::parse(url, None)
    }

    #[test]
    fn loopback_plain_smtp_is_allowed() {
        let s = parse("smtp://127.0.0.1:2525").unwrap();
        assert_eq!((s.host.as_str(), s.port, s.tls), ("127.0.0.1", 2525, TlsMode::None));
    }

    #[test]
    fn remote_plain_smtp_is_refused() {
        assert!(parse("smtp://mail.example.org").unwrap_err().to_string().contains("unencrypted"));
        let s = parse("smtp://mail.example.org?tls=starttls").unwrap();
        assert_eq!((s.port, s.tls), (587, TlsMode::StartTls));
    }

    #[test]
    fn smtps_with_credentials() {
        let s = parse("smtps://alert%40trial.org:p%40ss@mail.example.org").unwrap();
        assert_eq!(s.user.as_deref(), Some("alert@trial.org"));
        assert_eq!(s.password.as_deref(), Some("p@ss"));
        assert_eq!((s.port, s.tls), (465, TlsMode::Implicit));
        assert!(!format!("{s:?}").contains("p@ss"));
    }

    #[test]
    fn the_password_falls_back_to_the_one_given() {
        let s = SmtpSettings::parse("smtps://alert@mail.example.org", Some("env".into())).unwrap();
        assert_eq!(s.credentials(), Some(("alert", "env")));
        let s = SmtpSettings::parse("smtps://alert:url@mail.example.org", Some("env".into())).unwrap();
        assert_eq!(s.credentials(), Some(("alert", "url")));
    }

    #[test]
    fn bad_urls_are_refused() {
        assert_eq!(parse("ftp://x"), Err(SmtpUrlError::Scheme("ftp".into())));
        assert_eq!(parse("smtp://127.0.0.1:notaport"), Err(SmtpUrlError::Port("notaport".into())));
        assert_eq!(parse("smtp://127.0.0.1?color=red"), Err(SmtpUrlError::Option("color=red".into())));
        assert!(matches!(parse("127.0.0.1:25"), Err(SmtpUrlError::NotAUrl)));
        // A malformed URL never comes back with its password in the message.
        for url in
            ["smtp:/alert:s3cretpw@mail", "smtps://alert:s3c?retpw@mail:465", "smtps://alert:s3c/retpw@mail"]
        {
            let e = parse(url).unwrap_err().to_string();
            assert!(!e.contains("s3c") && !e.contains("retpw"), "{url}: {e}");
        }
    }
}
