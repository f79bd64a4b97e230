//! Pieces of rule YAML that several kinds share: a time window after a dose
//! (`{after: dose, hours: 24}`) with the dose it falls in, and a minimum grade (`{at_least: 3}`).

use crate::model::{ClinicalTime, Dose};
use chrono::Duration;
use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use std::fmt;
use std::marker::PhantomData;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AtLeast {
    pub at_least: u8,
}

/// From the start of a dose to `hours` after it, both ends included. `A` is the anchors
/// the rule kind accepts, and names the window in serde's messages.
#[derive(Debug, Clone)]
pub struct Window<A> {
    pub after: A,
    pub hours: f64,
}

impl<A> Window<A> {
    /// What serde cannot see; `path` is the window's key in the rule (`within`).
    pub fn validate(&self, path: &str) -> Result<(), (String, String)> {
        if self.hours > 0.0 && self.hours.is_finite() {
            Ok(())
        } else {
            Err((format!("{path}.hours"), "must be a positive number of hours".into()))
        }
    }

    /// `hours` to the minute.
    pub fn span(&self) -> Duration {
        Duration::minutes((self.hours * 60.0).round() as i64)
    }
}

/// The latest dose (its index in `doses`, and the dose) whose start is at most `span`
/// before `t`, both ends included. A partial time counts if any instant it may be is
/// inside: for safety, doubt raises the alert.
pub fn latest_dose_within<'d>(
    t: &ClinicalTime,
    span: Duration,
    doses: &[&'d Dose],
) -> Option<(usize, &'d Dose)> {
    doses
        .iter()
        .enumerate()
        .rev()
        .find(|(_, d)| t.latest() >= d.start.earliest() && t.earliest() <= d.start.latest() + span)
        .map(|(i, d)| (i, *d))
}

/// The anchors a window may take, and the struct name serde gives the window.
pub trait Anchors {
    const WINDOW: &'static str;
}

/// Any dose, or only the first one (`adverse_event`'s `onset_within`).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Anchor {
    /// The start of any dose.
    Dose,
    /// The start of the first dose only.
    FirstDose,
}

impl Anchors for Anchor {
    const WINDOW: &'static str = "OnsetWindow";
}

impl Anchor {
    /// The dose a window counts from, in a sentence ("within 24 h of the first dose").
    pub fn noun(self) -> &'static str {
        match self {
            Self::Dose => "a dose",
            Self::FirstDose => "the first dose",
        }
    }
}

/// Any dose only (`vital`'s `within`).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename = "Anchor", rename_all = "snake_case")]
pub enum DoseAnchor {
    /// The start of any dose.
    Dose,
}

impl Anchors for DoseAnchor {
    const WINDOW: &'static str = "Window";
}

/// The fields as written; `Window` wraps it only to name itself per anchor.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Fields<A> {
    after: A,
    hours: f64,
}

const FIELDS: &[&str] = &["after", "hours"];

impl<'de, A: Anchors + Deserialize<'de>> Deserialize<'de> for Window<A> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Named<A>(PhantomData<A>);
        impl<'de, A: Anchors + Deserialize<'de>> Visitor<'de> for Named<A> {
            type Value = Fields<A>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "struct {}", A::WINDOW)
            }
            fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<Fields<A>, M::Error> {
                Fields::deserialize(MapAccessDeserializer::new(map))
            }
            fn visit_seq<S: SeqAccess<'de>>(self, seq: S) -> Result<Fields<A>, S::Error> {
                Fields::deserialize(SeqAccessDeserializer::new(seq))
            }
        }
        let f = deserializer.deserialize_struct(A::WINDOW, FIELDS, Named(PhantomData))?;
        Ok(Self { after: f.after, hours: f.hours })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error<T: for<'de> Deserialize<'de> + fmt::Debug>(yaml: &str) -> String {
        serde_yaml::from_str::<T>(yaml).unwrap_err().to_string()
    }

    #[test]
    fn reads_both_anchors_and_names_the_window_per_kind() {
        let w: Window<Anchor> = serde_yaml::from_str("{after: first_dose, hours: 24}").unwrap();
        assert!(matches!(w.after, Anchor::FirstDose));
        assert_eq!(w.span(), Duration::hours(24));
        let w: Window<DoseAnchor> = serde_yaml::from_str("{after: dose, hours: 1.5}").unwrap();
        assert_eq!(w.span(), Duration::minutes(90));
        assert!(error::<Window<Anchor>>("5").contains("expected struct OnsetWindow"));
        assert!(error::<Window<DoseAnchor>>("5").contains("expected struct Window"));
        assert!(error::<Window<DoseAnchor>>("{after: first_dose, hours: 2}")
            .contains("unknown variant `first_dose`, expected `dose`"));
        assert!(error::<Window<Anchor>>("{after: dose}").contains("missing field `hours`"));
        assert!(error::<Window<Anchor>>("{after: dose, hours: 1, x: 2}").contains("unknown field `x`"));
    }

    #[test]
    fn hours_must_be_positive() {
        let w: Window<Anchor> = serde_yaml::from_str("{after: dose, hours: 0}").unwrap();
        assert_eq!(w.validate("match.onset_within").unwrap_err().0, "match.onset_within.hours");
    }
}
