//! Clinical times: full timestamps, dates and partial ISO 8601 dates.
//!
//! A date without a time is a day, not midnight UTC; a partial date (`2019-05`, `2019`,
//! `2019---15`) is an interval. Every time is kept as the raw text plus the earliest and
//! latest instant it can stand for, so rules can decide conservatively.
//!
//! A time without an offset (SDTM, CSV, most native records) is local to the record's
//! site: `parse` reads it as UTC and `placed` re-reads it in the site's zone (see
//! `Zones`). Around a daylight-saving change a local time can be ambiguous (it happens
//! twice) or nonexistent (the clocks jumped over it); both become the interval between
//! the two readings, like a partial date, so nothing is refused and rules stay conservative.

use chrono::offset::LocalResult;
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;

/// The study's time zone and the sites that differ from it (config `study.timezone`,
/// `study.sites`). Local times of a record are read in its site's zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zones {
    pub study: Tz,
    pub sites: BTreeMap<String, Tz>,
}

impl Default for Zones {
    fn default() -> Self {
        Self { study: Tz::UTC, sites: BTreeMap::new() }
    }
}

impl Zones {
    /// The zone of a site: its override, else the study's.
    pub fn of_site(&self, site: Option<&str>) -> Tz {
        site.and_then(|s| self.sites.get(s)).copied().unwrap_or(self.study)
    }
}

/// The earliest and latest UTC instants a local wall-clock time can stand for: one
/// instant normally, two across a daylight-saving change (ambiguous: the first and the
/// second occurrence; nonexistent: read with the offset after and before the jump).
pub fn local_readings(zone: Tz, local: NaiveDateTime) -> (DateTime<Utc>, DateTime<Utc>) {
    match zone.from_local_datetime(&local) {
        LocalResult::Single(t) => (t.with_timezone(&Utc), t.with_timezone(&Utc)),
        LocalResult::Ambiguous(a, b) => {
            let (a, b) = (a.with_timezone(&Utc), b.with_timezone(&Utc));
            (a.min(b), a.max(b))
        }
        LocalResult::None => {
            // In a gap: the offsets in force a day before and a day after bracket it.
            let offset = |t: NaiveDateTime| zone.offset_from_utc_datetime(&t).fix().local_minus_utc();
            let reading = |secs: i32| Utc.from_utc_datetime(&(local - Duration::seconds(i64::from(secs))));
            let (a, b) =
                (reading(offset(local - Duration::days(1))), reading(offset(local + Duration::days(1))));
            (a.min(b), a.max(b))
        }
    }
}

/// The first instant of a local calendar day (midnight, or the end of a DST gap that
/// swallows midnight).
pub fn local_day_start(zone: Tz, day: NaiveDate) -> DateTime<Utc> {
    let midnight = day.and_hms_opt(0, 0, 0).unwrap_or_default();
    match zone.from_local_datetime(&midnight) {
        LocalResult::None => local_readings(zone, midnight).1,
        _ => local_readings(zone, midnight).0,
    }
}

/// The local calendar day an instant falls on.
pub fn local_day(zone: Tz, t: DateTime<Utc>) -> NaiveDate {
    t.with_timezone(&zone).date_naive()
}

/// "2026-03-29 23:59 CEST (Europe/Stockholm)": an instant for people, naming its zone.
pub fn local_text(zone: Tz, t: DateTime<Utc>) -> String {
    let local = t.with_timezone(&zone);
    if zone == Tz::UTC {
        local.format("%Y-%m-%d %H:%M UTC").to_string()
    } else {
        format!("{} ({})", local.format("%Y-%m-%d %H:%M %Z"), zone.name())
    }
}

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
    /// No offset in the text: a local time or date, re-read by `placed`.
    local: bool,
    /// The zone its calendar day is counted in (the site's, once placed).
    zone: Tz,
    /// The study's zone, in which reporting deadlines count calendar days.
    study_zone: Tz,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not an ISO 8601 date or date-time: {why}")]
pub struct TimeParseError {
    text: String,
    why: &'static str,
}

impl ClinicalTime {
    /// Reads a time; one without an offset is read as UTC until `placed` puts it at its site.
    pub fn parse(text: &str) -> Result<Self, TimeParseError> {
        Self::parse_in(text, Tz::UTC)
    }

    /// Reads a time; one without an offset (or a date) is local to `zone`.
    pub fn parse_in(text: &str, zone: Tz) -> Result<Self, TimeParseError> {
        let s = text.trim();
        let err = |why| TimeParseError { text: text.to_string(), why };
        if s.is_empty() {
            return Err(err("empty"));
        }
        if s.contains('T') {
            if let Ok(t) = DateTime::parse_from_rfc3339(s) {
                let t = t.with_timezone(&Utc);
                return Ok(Self {
                    raw: s.to_string(),
                    earliest: t,
                    latest: t,
                    precision: Precision::Time,
                    local: false,
                    zone,
                    study_zone: zone,
                });
            }
            // SDTM date-times carry no offset; they are local to the zone.
            let naive = ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"]
                .iter()
                .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
                .or_else(|| {
                    NaiveDateTime::parse_from_str(&format!("{s}:00"), "%Y-%m-%dT%H:%M")
                        .ok()
                        .filter(|_| s.len() == 13)
                })
                .ok_or_else(|| err("impossible or malformed date-time"))?;
            let (earliest, latest) = local_readings(zone, naive);
            return Ok(Self {
                raw: s.to_string(),
                earliest,
                latest,
                precision: Precision::Time,
                local: true,
                zone,
                study_zone: zone,
            });
        }
        let parts: Vec<&str> = s.split('-').collect();
        let num = |p: &str, len: usize| -> Result<u32, TimeParseError> {
            if p.len() != len || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err("expected YYYY, YYYY-MM, YYYY-MM-DD or YYYY---DD"));
            }
            p.parse().map_err(|_| err("not a number"))
        };
        let year = num(parts[0], 4)? as i32;
        let day_start = |d: NaiveDate| local_day_start(zone, d);
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
            local: true,
            zone,
            study_zone: zone,
        })
    }

    /// The same time placed at a site: read in the site's zone when it carries no offset
    /// (a local time or a date), its days counted there, and the study's zone kept for
    /// reporting deadlines.
    pub fn placed(&self, zones: &Zones, site: Option<&str>) -> Self {
        let zone = zones.of_site(site);
        let placed = match self.local {
            // The raw text parsed once already, so it parses again.
            true => Self::parse_in(&self.raw, zone).unwrap_or_else(|_| self.clone()),
            false => self.clone(),
        };
        Self { zone, study_zone: zones.study, ..placed }
    }

    /// A complete timestamp, for times the system itself makes.
    pub fn at(t: DateTime<Utc>) -> Self {
        Self {
            raw: t.to_rfc3339(),
            earliest: t,
            latest: t,
            precision: Precision::Time,
            local: false,
            zone: Tz::UTC,
            study_zone: Tz::UTC,
        }
    }

    /// An instant the system computed, counted in `zone` (e.g. a deadline in the study's zone).
    pub fn at_in(t: DateTime<Utc>, zone: Tz) -> Self {
        Self { zone, study_zone: zone, ..Self::at(t) }
    }

    /// True when the text carried no offset (a local time, a date or a partial date).
    pub fn is_local(&self) -> bool {
        self.local
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
    /// The local calendar day this time falls on (earliest plausible), in its site's zone.
    pub fn day(&self) -> NaiveDate {
        local_day(self.zone, self.earliest)
    }
    /// The last local calendar day it can stand for (the same as `day` unless partial).
    pub fn last_day(&self) -> NaiveDate {
        local_day(self.zone, self.latest)
    }
    /// The zone its day is counted in.
    pub fn zone(&self) -> Tz {
        self.zone
    }
    /// The study's zone (deadlines count its calendar days).
    pub fn study_zone(&self) -> Tz {
        self.study_zone
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
        self.day().year()
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

    fn stockholm() -> Zones {
        let mut zones = Zones { study: Tz::Europe__Stockholm, ..Default::default() };
        zones.sites.insert("01-701".into(), Tz::America__Chicago);
        zones
    }

    /// A time as read at a Stockholm site: (earliest, latest) in UTC.
    fn at_site(text: &str, site: &str) -> (String, String) {
        let t = ClinicalTime::parse(text).unwrap().placed(&stockholm(), Some(site));
        (t.earliest().to_rfc3339(), t.latest().to_rfc3339())
    }

    fn one(t: &str) -> (String, String) {
        (t.to_string(), t.to_string())
    }

    #[test]
    fn local_times_are_read_in_the_sites_zone_across_dst() {
        // 2026-03-29: Stockholm moves from CET (+01) to CEST (+02) at 02:00.
        assert_eq!(at_site("2026-03-29T01:30", "KS"), one("2026-03-29T00:30:00+00:00"));
        assert_eq!(at_site("2026-03-29T03:30", "KS"), one("2026-03-29T01:30:00+00:00"));
        // 02:30 does not exist that night: both readings, as an interval.
        assert_eq!(
            at_site("2026-03-29T02:30", "KS"),
            ("2026-03-29T00:30:00+00:00".into(), "2026-03-29T01:30:00+00:00".into())
        );
        // 2026-10-25: 02:30 happens twice (CEST, then CET): from the first to the second.
        assert_eq!(
            at_site("2026-10-25T02:30", "KS"),
            ("2026-10-25T00:30:00+00:00".into(), "2026-10-25T01:30:00+00:00".into())
        );
        // A site with an override reads its own zone; an offset is never re-read.
        assert_eq!(at_site("2026-03-20T20:00", "01-701"), one("2026-03-21T01:00:00+00:00"));
        assert_eq!(at_site("2026-03-29T02:30:00+01:00", "KS"), one("2026-03-29T01:30:00+00:00"));
    }

    #[test]
    fn a_local_date_is_the_sites_whole_day() {
        // The spring-forward day has 23 hours.
        assert_eq!(
            at_site("2026-03-29", "KS"),
            ("2026-03-28T23:00:00+00:00".into(), "2026-03-29T21:59:59.999+00:00".into())
        );
        let t = ClinicalTime::parse("2026-03-29").unwrap().placed(&stockholm(), Some("KS"));
        assert_eq!(t.day().to_string(), "2026-03-29");
        assert_eq!(t.study_zone(), Tz::Europe__Stockholm);
        // A partial date is the interval of local days.
        assert_eq!(
            at_site("2026-10", "KS"),
            ("2026-09-30T22:00:00+00:00".into(), "2026-10-31T22:59:59.999+00:00".into())
        );
        // Its day is counted where it happened: 23:30 in Chicago is the next day in UTC.
        let t = ClinicalTime::parse("2026-03-20T23:30").unwrap().placed(&stockholm(), Some("01-701"));
        assert_eq!(t.day().to_string(), "2026-03-20");
        // A local date's first and last day are that date, whichever side of UTC the site
        // is on (in UTC, Chicago's 20 March ends on the 21st, Stockholm's begins on the 28th).
        let chicago = ClinicalTime::parse("2026-03-20").unwrap().placed(&stockholm(), Some("01-701"));
        assert_eq!(
            (chicago.day().to_string(), chicago.last_day().to_string()),
            ("2026-03-20".into(), "2026-03-20".into())
        );
        let month = ClinicalTime::parse("2026-03").unwrap().placed(&stockholm(), Some("KS"));
        assert_eq!(
            (month.day().to_string(), month.last_day().to_string()),
            ("2026-03-01".into(), "2026-03-31".into())
        );
    }

    #[test]
    fn instants_name_their_zone() {
        let t = DateTime::parse_from_rfc3339("2026-03-29T21:59:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(local_text(Tz::Europe__Stockholm, t), "2026-03-29 23:59 CEST (Europe/Stockholm)");
        assert_eq!(local_text(Tz::UTC, t), "2026-03-29 21:59 UTC");
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
