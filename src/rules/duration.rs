//! Durations written in rule files: `24h`, `7d`, `12w`, `30m`.

use serde::{Deserialize, Deserializer};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span {
    minutes: i64,
}

impl Span {
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
        let n: i64 =
            num.parse().map_err(|_| format!("`{s}` is not a duration such as 30m, 24h, 7d or 12w"))?;
        let minutes = match unit {
            "m" | "min" => n,
            "h" => n * 60,
            "d" => n * 60 * 24,
            "w" => n * 60 * 24 * 7,
            _ => return Err(format!("`{s}` is not a duration such as 30m, 24h, 7d or 12w")),
        };
        Ok(Self { minutes })
    }
    pub const fn from_days(days: i64) -> Self {
        Self { minutes: days * 60 * 24 }
    }
    pub fn minutes(self) -> i64 {
        self.minutes
    }
    pub fn days(self) -> i64 {
        self.minutes / (60 * 24)
    }
    pub fn chrono(self) -> chrono::Duration {
        chrono::Duration::minutes(self.minutes)
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.minutes;
        if m % (60 * 24 * 7) == 0 && m != 0 {
            write!(f, "{} weeks", m / (60 * 24 * 7))
        } else if m % (60 * 24) == 0 && m != 0 {
            write!(f, "{} days", m / (60 * 24))
        } else if m % 60 == 0 {
            write!(f, "{} h", m / 60)
        } else {
            write!(f, "{m} min")
        }
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Span::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(Span::parse("12w").unwrap().days(), 84);
        assert_eq!(Span::parse("24h").unwrap().minutes(), 1440);
        assert_eq!(Span::parse("30d").unwrap().to_string(), "30 days");
        assert!(Span::parse("12").is_err());
        assert!(Span::parse("w12").is_err());
        assert!(Span::parse("3y").is_err());
    }
}
