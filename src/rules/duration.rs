//! Durations written in rule and configuration files: `30s`, `30m`, `24h`, `7d`, `12w`.

use serde::{Deserialize, Deserializer};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span {
    seconds: i64,
}

impl Span {
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
        let bad = || format!("`{s}` is not a duration such as 30m, 24h, 7d or 12w");
        let n: i64 = num.parse().map_err(|_| bad())?;
        let unit_seconds = match unit {
            "s" => 1,
            "m" | "min" => 60,
            "h" => 3600,
            "d" => 86_400,
            "w" => 7 * 86_400,
            _ => return Err(bad()),
        };
        // Longer than any trial; and far from where date arithmetic would overflow.
        let seconds =
            n.checked_mul(unit_seconds).filter(|s| *s <= Self::LONGEST.seconds).ok_or_else(|| {
                format!("`{s}` is longer than the longest duration vigil takes, {}", Self::LONGEST)
            })?;
        Ok(Self { seconds })
    }
    /// The longest duration a rule or a silence may say: 100 years.
    pub const LONGEST: Span = Span::from_days(36_525);

    pub const fn from_days(days: i64) -> Self {
        Self { seconds: days * 86_400 }
    }
    pub fn seconds(self) -> i64 {
        self.seconds
    }
    pub fn minutes(self) -> i64 {
        self.seconds / 60
    }
    pub fn days(self) -> i64 {
        self.seconds / 86_400
    }
    pub fn chrono(self) -> chrono::Duration {
        chrono::Duration::seconds(self.seconds)
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.seconds;
        let week = 7 * 86_400;
        if s != 0 && s % week == 0 {
            write!(f, "{} weeks", s / week)
        } else if s != 0 && s % 86_400 == 0 {
            write!(f, "{} days", s / 86_400)
        } else if s % 3600 == 0 {
            write!(f, "{} h", s / 3600)
        } else if s % 60 == 0 {
            write!(f, "{} min", s / 60)
        } else {
            write!(f, "{s} s")
        }
    }
}

/// For keys that give a whole number of days (`within_days: 30`): the rule files keep
/// their number, the rule holds a `Span`.
pub fn whole_days<'de, D: Deserializer<'de>>(d: D) -> Result<Span, D::Error> {
    u32::deserialize(d).map(|n| Span::from_days(i64::from(n)))
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
        assert_eq!(Span::parse("90s").unwrap().seconds(), 90);
        assert!(Span::parse("12").is_err());
        assert!(Span::parse("w12").is_err());
        // An absurd duration is refused, not an overflow or a panic later.
        assert!(Span::parse("99999999999999999w").unwrap_err().contains("longest"));
        assert!(Span::parse("36526d").is_err());
        assert_eq!(Span::parse("36525d").unwrap(), Span::LONGEST);
        assert!(Span::parse("3y").is_err());
    }

    #[test]
    fn whole_days_read_a_number() {
        #[derive(Deserialize)]
        struct W {
            #[serde(deserialize_with = "whole_days")]
            within_days: Span,
        }
        let w: W = serde_yaml::from_str("within_days: 30").unwrap();
        assert_eq!(w.within_days, Span::from_days(30));
        assert!(serde_yaml::from_str::<W>("within_days: -1").is_err());
        assert!(serde_yaml::from_str::<W>("within_days: 30d").is_err());
    }
}
