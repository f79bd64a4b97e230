//! Clinical times: full timestamps, dates and partial ISO 8601 dates.
//!
//! A date without a time is a day, not midnight UTC; a partial date (`2019-05`, `2019`,
//! `2019---15`) is an interval. Every time is kept as the raw text plus the earliest and
//! latest instant it can stand for, so rules can decide conservatively.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde::{Serialize, Serializer};
use std::fmt;

/// How much of a time was known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    Year,
    Month,
    /// Year and day known, month missing (`2019---15`).
    YearDay,
    Day,
    Time,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClinicalTime {
    raw: String,
    earliest: DateTime<Utc>,
    latest: DateTime<Utc>,
    precision: Precision,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not an ISO 8601 date or date-time: {why}")]
pub struct TimeParseError {
    text: String,
    why: &'static str,
}

impl ClinicalTime {
    pub fn parse(text: &str) -> Result<Self, TimeParseError> {
        let s = text.trim();
        let err = |why| TimeParseError { text: text.to_string(), why };
        if s.is_empty() {
            return Err(err("empty"));
        }
        if s.contains('T') {
            let (earliest, precision) = if let Ok(t) = DateTime::parse_from_rfc3339(s) {
                (t.with_timezone(&Utc), Precision::Time)
            } else {
                // SDTM date-times carry no offset; they are read as UTC.
                let naive = ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"]
                    .iter()
                    .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
                    .or_else(|| {
                        NaiveDateTime::parse_from_str(&format!("{s}:00"), "%Y-%m-%dT%H:%M")
                            .ok()
                            .filter(|_| s.len() == 13)
                    })
                    .ok_or_else(|| err("impossible or malformed date-time"))?;
                (Utc.from_utc_datetime(&naive), Precision::Time)
            };
            return Ok(Self { raw: s.to_string(), earliest, latest: earliest, precision });
        }
        let parts: Vec<&str> = s.split('-').collect();
        let num = |p: &str, len: usize| -> Result<u32, TimeParseError> {
            if p.len() != len || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err("expected YYYY, YYYY-MM, YYYY-MM-DD or YYYY---DD"));
            }
            p.parse().map_err(|_| err("not a number"))
        };
        let year = num(parts[0], 4)? as i32;
        let day_start = |d: NaiveDate| Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default());
        let (first, last, precision) = match parts.as_slice() {
            [_] => {
                let first = NaiveDate::from_ymd_opt(year, 1, 1).ok_or_else(|| err("impossible year"))?;
                let last = NaiveDate::from_ymd_opt(year + 1, 1, 1).ok_or_else(|| err("impossible year"))?;
                (first, last, Precision::Year)
            }
            [_, m] => {
                let month = num(m, 2)?;
                let first = NaiveDate::from_ymd_opt(year, month, 1).ok_or_else(|| err("impossible month"))?;
                let last = if month == 12 {
                    NaiveDate::from_ymd_opt(year + 1, 1, 1)
                } else {
                    NaiveDate::from_ymd_opt(year, month + 1, 1)
                }
                .ok_or_else(|| err("impossible month"))?;
                (first, last, Precision::Month)
            }
            [_, m, d] => {
                let (month, day) = (num(m, 2)?, num(d, 2)?);
                let first =
                    NaiveDate::from_ymd_opt(year, month, day).ok_or_else(|| err("impossible date"))?;
                (first, first + Duration::days(1), Precision::Day)
            }
            // `2019---15`: month unknown, day known.
            [_, "", "", d] => {
                let day = num(d, 2)?;
                if !(1..=31).contains(&day) {
                    return Err(err("impossible day"));
                }
                let first = (1..=12)
                    .find_map(|m| NaiveDate::from_ymd_opt(year, m, day))
                    .ok_or_else(|| err("impossible day"))?;
                let last = (1..=12)
                    .rev()
                    .find_map(|m| NaiveDate::from_ymd_opt(year, m, day))
                    .ok_or_else(|| err("impossible day"))?;
                (first, last + Duration::days(1), Precision::YearDay)
            }
            _ => return Err(err("expected YYYY, YYYY-MM, YYYY-MM-DD or YYYY---DD")),
        };
        Ok(Self {
            raw: s.to_string(),
            earliest: day_start(first),
            // The interval is half-open; latest is the last representable millisecond.
            latest: day_start(last) - Duration::milliseconds(1),
            precision,
        })
    }

    /// A complete timestamp, for times the system itself makes.
    pub fn at(t: DateTime<Utc>) -> Self {
        Self { raw: t.to_rfc3339(), earliest: t, latest: t, precision: Precision::Time }
    }

    pub fn raw(&self) -> &str {
        &self.raw
    }
    pub fn earliest(&self) -> DateTime<Utc> {
        self.earliest
    }
    pub fn latest(&self) -> DateTime<Utc> {
        self.latest
    }
    pub fn precision(&self) -> Precision {
        self.precision
    }
    /// True when the month or day was missing: the value was imputed.
    pub fn is_partial(&self) -> bool {
        matches!(self.precision, Precision::Year | Precision::Month | Precision::YearDay)
    }
    /// The calendar day this time falls on (earliest plausible).
    pub fn day(&self) -> NaiveDate {
        self.earliest.date_naive()
    }
    /// Whole days from `from` to this time (earliest plausible), by calendar day.
    pub fn days_since(&self, from: &ClinicalTime) -> i64 {
        (self.day() - from.day()).num_days()
    }
    /// Study day in the CDISC convention: day 1 is the reference day, there is no day 0.
    pub fn study_day(&self, reference: &ClinicalTime) -> i64 {
        let d = self.days_since(reference);
        if d >= 0 {
            d + 1
        } else {
            d
        }
    }
    pub fn year(&self) -> i32 {
        self.earliest.year()
    }
}

impl fmt::Display for ClinicalTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl Serialize for ClinicalTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_timestamps_keep_their_offset() {
        let t = ClinicalTime::parse("2019-02-26T09:10:00+01:00").unwrap();
        assert_eq!(t.earliest().to_rfc3339(), "2019-02-26T08:10:00+00:00");
        assert_eq!(t.earliest(), t.latest());
        assert!(!t.is_partial());
    }

    #[test]
    fn sdtm_times_without_offset_are_read() {
        let t = ClinicalTime::parse("2014-01-23T09:16").unwrap();
        assert_eq!(t.earliest().to_rfc3339(), "2014-01-23T09:16:00+00:00");
    }

    #[test]
    fn a_date_is_a_whole_day() {
        let t = ClinicalTime::parse("2019-05-21").unwrap();
        assert_eq!(t.precision(), Precision::Day);
        assert_eq!(t.earliest().to_rfc3339(), "2019-05-21T00:00:00+00:00");
        assert_eq!(t.latest().to_rfc3339(), "2019-05-21T23:59:59.999+00:00");
    }

    #[test]
    fn partial_dates_are_intervals_and_flagged() {
        let m = ClinicalTime::parse("2019-02").unwrap();
        assert!(m.is_partial());
        assert_eq!(m.latest().date_naive().to_string(), "2019-02-28");
        let y = ClinicalTime::parse("2020").unwrap();
        assert_eq!(y.latest().date_naive().to_string(), "2020-12-31");
        let yd = ClinicalTime::parse("2019---31").unwrap();
        assert_eq!(yd.earliest().date_naive().to_string(), "2019-01-31");
        assert_eq!(yd.latest().date_naive().to_string(), "2019-12-31");
    }

    #[test]
    fn impossible_dates_are_refused() {
        for bad in ["2019-02-30", "2019-13", "19-01-01", "2019-1-1", "yesterday", "", "2019-02-29T25:00"] {
            assert!(ClinicalTime::parse(bad).is_err(), "{bad} should be refused");
        }
        assert!(ClinicalTime::parse("2020-02-29").is_ok());
    }

    #[test]
    fn study_day_has_no_day_zero() {
        let first = ClinicalTime::parse("2019-02-26T09:10:00+01:00").unwrap();
        assert_eq!(ClinicalTime::parse("2019-02-26").unwrap().study_day(&first), 1);
        assert_eq!(ClinicalTime::parse("2019-03-05").unwrap().study_day(&first), 8);
        assert_eq!(ClinicalTime::parse("2019-02-25").unwrap().study_day(&first), -1);
    }
}
