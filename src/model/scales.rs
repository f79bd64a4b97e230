//! Identifiers and clinical scales that parse rather than validate.

use serde::{Serialize, Serializer};
use std::fmt;

/// A pseudonymous subject identifier (e.g. `KS-101`): the only way a person appears in vigil.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SubjectId(String);

impl SubjectId {
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("subject id is empty".into());
        }
        if s.len() > 64 {
            return Err(format!("subject id is {} characters long; at most 64", s.len()));
        }
        if let Some(c) = s.chars().find(|c| !(c.is_ascii_alphanumeric() || "-_./: ".contains(*c))) {
            return Err(format!("subject id `{s}` contains `{c}`; use letters, digits and - _ . / :"));
        }
        Ok(Self(s.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SubjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for SubjectId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// An EDSS score, held as half points: 0, 1.0, 1.5, …, 10.0 (0.5 does not exist).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Edss(u8);

impl Edss {
    pub fn parse(v: f64) -> Result<Self, String> {
        let halves = v * 2.0;
        if !v.is_finite() || halves.fract() != 0.0 || !(0.0..=20.0).contains(&halves) || halves == 1.0 {
            return Err(format!("EDSS {v} does not exist: valid scores are 0, 1.0, 1.5, …, 10.0"));
        }
        Ok(Self(halves as u8))
    }
    pub fn value(self) -> f64 {
        f64::from(self.0) / 2.0
    }
    pub fn halves(self) -> u8 {
        self.0
    }
}

impl fmt::Display for Edss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.1}", self.value())
    }
}

impl Serialize for Edss {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.value())
    }
}

/// A CTCAE grade, 1 (mild) to 5 (death).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CtcaeGrade(u8);

impl CtcaeGrade {
    pub fn parse(v: f64) -> Result<Self, String> {
        if v.fract() != 0.0 || !(1.0..=5.0).contains(&v) {
            return Err(format!("CTCAE grade {v} does not exist: grades are 1 to 5"));
        }
        Ok(Self(v as u8))
    }
    pub fn new(v: u8) -> Result<Self, String> {
        Self::parse(f64::from(v))
    }
    pub fn value(self) -> u8 {
        self.0
    }
}

impl fmt::Display for CtcaeGrade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Serialize for CtcaeGrade {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(self.0)
    }
}

/// ICH E2A seriousness criteria.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Seriousness {
    Death,
    LifeThreatening,
    Hospitalization,
    Disability,
    CongenitalAnomaly,
    ImportantMedicalEvent,
}

impl Seriousness {
    pub fn parse(s: &str) -> Result<Self, String> {
        let k = s.trim().to_ascii_lowercase().replace([' ', '-'], "_");
        Ok(match k.as_str() {
            "death" | "fatal" | "aesdth" => Self::Death,
            "life_threatening" | "aeslife" => Self::LifeThreatening,
            "hospitalization" | "hospitalisation" | "aeshosp" => Self::Hospitalization,
            "disability" | "incapacity" | "aesdisab" => Self::Disability,
            "congenital_anomaly" | "birth_defect" | "aescong" => Self::CongenitalAnomaly,
            "important_medical_event" | "other" | "aesmie" => Self::ImportantMedicalEvent,
            _ => {
                return Err(format!(
                    "unknown seriousness criterion `{s}`: use death, life_threatening, hospitalization, \
                     disability, congenital_anomaly or important_medical_event"
                ))
            }
        })
    }
    pub fn label(self) -> &'static str {
        match self {
            Self::Death => "death",
            Self::LifeThreatening => "life-threatening",
            Self::Hospitalization => "hospitalization",
            Self::Disability => "disability",
            Self::CongenitalAnomaly => "congenital anomaly",
            Self::ImportantMedicalEvent => "important medical event",
        }
    }
}

/// The investigator's causality assessment, on the WHO-UMC-like scale used by most CRFs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Relatedness {
    NotRelated,
    Unlikely,
    Possible,
    Probable,
    Definite,
}

impl Relatedness {
    pub fn parse(s: &str) -> Result<Self, String> {
        let k = s.trim().to_ascii_lowercase().replace([' ', '-'], "_");
        Ok(match k.as_str() {
            "not_related" | "none" | "unrelated" | "no" | "n" => Self::NotRelated,
            "unlikely" | "remote" | "unlikely_related" => Self::Unlikely,
            "possible" | "possibly" | "possibly_related" => Self::Possible,
            "probable" | "probably" | "likely" | "probably_related" | "related" | "yes" | "y" => {
                Self::Probable
            }
            "definite" | "definitely" | "certain" | "definitely_related" => Self::Definite,
            _ => {
                return Err(format!(
                    "unknown relatedness `{s}`: use not_related, unlikely, possible, probable or definite"
                ))
            }
        })
    }
    /// Possible or stronger: the usual meaning of "related" in safety rules.
    pub fn is_related(self) -> bool {
        self >= Self::Possible
    }
    pub fn label(self) -> &'static str {
        match self {
            Self::NotRelated => "not related",
            Self::Unlikely => "unlikely",
            Self::Possible => "possible",
            Self::Probable => "probable",
            Self::Definite => "definite",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edss_accepts_only_the_twenty_steps() {
        assert_eq!(Edss::parse(0.0).unwrap().value(), 0.0);
        assert_eq!(Edss::parse(5.5).unwrap().halves(), 11);
        assert_eq!(Edss::parse(10.0).unwrap().value(), 10.0);
        for bad in [0.5, -1.0, 10.5, 4.25, f64::NAN, 11.0] {
            assert!(Edss::parse(bad).is_err(), "{bad}");
        }
        let steps = (0..=20).filter(|h| Edss::parse(f64::from(*h) / 2.0).is_ok()).count();
        assert_eq!(steps, 20);
    }

    #[test]
    fn ctcae_grades_are_one_to_five() {
        assert!(CtcaeGrade::parse(0.0).is_err());
        assert!(CtcaeGrade::parse(6.0).is_err());
        assert!(CtcaeGrade::parse(2.5).is_err());
        assert!(CtcaeGrade::parse(3.0).unwrap() > CtcaeGrade::parse(2.0).unwrap());
    }

    #[test]
    fn subject_ids_refuse_empty_and_odd_characters() {
        assert!(SubjectId::parse("  ").is_err());
        assert!(SubjectId::parse("Anna <anna@x>").is_err());
        assert_eq!(SubjectId::parse(" KS-101 ").unwrap().as_str(), "KS-101");
        assert!(SubjectId::parse("01-701-1015").is_ok());
    }

    #[test]
    fn relatedness_reads_sdtm_words() {
        assert_eq!(Relatedness::parse("REMOTE").unwrap(), Relatedness::Unlikely);
        assert!(Relatedness::parse("Probable").unwrap().is_related());
        assert!(!Relatedness::parse("NONE").unwrap().is_related());
        assert!(Relatedness::parse("maybe").is_err());
    }
}
