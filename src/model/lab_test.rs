//! One vocabulary for laboratory tests and units: SDTM codes (LBTESTCD), names (LBTEST)
//! and the synonyms sites use (SGPT for ALT, "Total bilirubin" for BILI) parse into one
//! canonical test, so the rules and the report agree on what counts as, say, bilirubin.
//!
//! Parsing ignores case, spaces and punctuation ("Alanine Aminotransferase",
//! "alanine-aminotransferase" and "ALANINEAMINOTRANSFERASE" are the same test). A name
//! vigil does not know is kept, normalised the same way, so two spellings of an unknown
//! test still agree with each other.

use std::fmt;

/// A laboratory test, canonical for the tests vigil knows.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LabTest {
    /// Alanine aminotransferase (ALT, SGPT, ALAT).
    Alt,
    /// Aspartate aminotransferase (AST, SGOT, ASAT).
    Ast,
    /// Total bilirubin (BILI, TBILI).
    Bilirubin,
    /// Alkaline phosphatase (ALP, ALKPH).
    Alp,
    /// Gamma glutamyl transferase (GGT).
    Ggt,
    Creatinine,
    CreatineKinase,
    Albumin,
    /// Blood urea nitrogen (BUN).
    Urea,
    Glucose,
    Sodium,
    Potassium,
    Calcium,
    Chloride,
    Hemoglobin,
    Hematocrit,
    /// White blood cells (WBC, leukocytes).
    Leukocytes,
    /// Absolute neutrophil count (NEUT, ANC).
    Neutrophils,
    Lymphocytes,
    Platelets,
    /// Red blood cells (RBC, erythrocytes).
    Erythrocytes,
    /// Any other test: its name, upper case, without spaces or punctuation.
    Other(String),
}

/// Each known test with its code first, then every accepted spelling (normalised: upper
/// case, letters and digits only). The code is what messages and the report show.
const KNOWN: &[(LabTest, &[&str])] = &[
    (LabTest::Alt, &["ALT", "SGPT", "ALAT", "ALANINEAMINOTRANSFERASE"]),
    (LabTest::Ast, &["AST", "SGOT", "ASAT", "ASPARTATEAMINOTRANSFERASE"]),
    (LabTest::Bilirubin, &["BILI", "TBILI", "BILIRUBIN", "TOTALBILIRUBIN", "BILIRUBINTOTAL"]),
    (LabTest::Alp, &["ALP", "ALKPH", "ALKALINEPHOSPHATASE"]),
    (LabTest::Ggt, &["GGT", "GAMMAGLUTAMYLTRANSFERASE"]),
    (LabTest::Creatinine, &["CREAT", "CREATININE"]),
    (LabTest::CreatineKinase, &["CK", "CREATINEKINASE", "CPK"]),
    (LabTest::Albumin, &["ALB", "ALBUMIN"]),
    (LabTest::Urea, &["BUN", "BLOODUREANITROGEN", "UREA", "UREAN"]),
    (LabTest::Glucose, &["GLUC", "GLUCOSE"]),
    (LabTest::Sodium, &["SODIUM"]),
    (LabTest::Potassium, &["K", "POTASSIUM"]),
    (LabTest::Calcium, &["CA", "CALCIUM"]),
    (LabTest::Chloride, &["CL", "CHLORIDE"]),
    (LabTest::Hemoglobin, &["HGB", "HB", "HEMOGLOBIN", "HAEMOGLOBIN"]),
    (LabTest::Hematocrit, &["HCT", "HEMATOCRIT", "HAEMATOCRIT"]),
    (LabTest::Leukocytes, &["WBC", "LEUKOCYTES", "WHITEBLOODCELLS"]),
    (LabTest::Neutrophils, &["NEUT", "ANC", "NEUTROPHILS"]),
    (LabTest::Lymphocytes, &["LYM", "LYMPH", "LYMPHOCYTES"]),
    (LabTest::Platelets, &["PLAT", "PLT", "PLATELETS", "PLATELET"]),
    (LabTest::Erythrocytes, &["RBC", "ERYTHROCYTES", "REDBLOODCELLS"]),
];

/// Upper case, letters and digits only: "Total bilirubin" → "TOTALBILIRUBIN".
/// A name compared ignoring case, whitespace and punctuation ("Infusion-related reaction"
/// is "infusion related reaction"): lab tests here, adverse-event terms in the rules.
pub(crate) fn normalise(name: &str) -> String {
    name.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_uppercase).collect()
}

impl LabTest {
    /// The canonical test for a code, name or synonym. Never fails: an unknown name is an
    /// `Other` test, compared with other names in the same normalised form.
    pub fn parse(name: &str) -> Self {
        let key = normalise(name);
        KNOWN
            .iter()
            .find(|(_, spellings)| spellings.contains(&key.as_str()))
            .map_or(Self::Other(key), |(k, _)| k.clone())
    }

    /// The SDTM code (ALT, BILI, …) of a known test, or the normalised name of another.
    pub fn code(&self) -> &str {
        match self {
            Self::Other(name) => name,
            known => KNOWN.iter().find(|(k, _)| k == known).map_or("", |(_, s)| s[0]),
        }
    }

    /// Whether this is a test vigil knows by its synonyms.
    pub fn is_known(&self) -> bool {
        !matches!(self, Self::Other(_))
    }

    /// ALT or AST: the transaminases of Hy's law.
    pub fn is_transaminase(&self) -> bool {
        matches!(self, Self::Alt | Self::Ast)
    }

    /// The tests of the liver panel read by Hy's law and the report's liver table: ALT,
    /// AST and total bilirubin (ALP is read only to exclude cholestasis).
    pub fn is_liver(&self) -> bool {
        matches!(self, Self::Alt | Self::Ast | Self::Bilirubin)
    }
}

impl fmt::Display for LabTest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A unit of a lab result, normalised so spellings of one unit compare equal: case and
/// spaces ignored, µ/μ read as u, × as x ("10^9 /L" = "10^9/l", "µmol/L" = "umol/l").
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LabUnit(String);

impl LabUnit {
    pub fn parse(unit: &str) -> Self {
        Self(
            unit.chars()
                .filter(|c| !c.is_whitespace())
                .map(|c| match c {
                    'µ' | 'μ' => 'u',
                    '×' => 'x',
                    c => c.to_ascii_lowercase(),
                })
                .collect(),
        )
    }

    /// The normalised spelling ("g/dl", "10^9/l").
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LabUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_names_and_synonyms_are_one_test() {
        for name in ["ALT", "sgpt", "Alanine Aminotransferase", "alanine-aminotransferase", " ALAT "] {
            assert_eq!(LabTest::parse(name), LabTest::Alt, "{name}");
        }
        for name in ["AST", "SGOT", "Aspartate Aminotransferase"] {
            assert_eq!(LabTest::parse(name), LabTest::Ast, "{name}");
        }
        for name in ["BILI", "tbili", "Bilirubin", "Total bilirubin", "Bilirubin, total"] {
            assert_eq!(LabTest::parse(name), LabTest::Bilirubin, "{name}");
        }
        for name in ["ALP", "ALKPH", "Alkaline Phosphatase"] {
            assert_eq!(LabTest::parse(name), LabTest::Alp, "{name}");
        }
        assert_eq!(LabTest::parse("Creatinine"), LabTest::Creatinine);
        assert_eq!(LabTest::parse("CREAT"), LabTest::Creatinine);
        assert_eq!(LabTest::parse("Creatine Kinase"), LabTest::CreatineKinase);
        assert_eq!(LabTest::parse("Platelet"), LabTest::Platelets);
        assert_eq!(LabTest::parse("Haemoglobin"), LabTest::Hemoglobin);
        assert_eq!(LabTest::parse("k"), LabTest::Potassium);
    }

    #[test]
    fn unknown_tests_keep_a_normalised_name() {
        assert_eq!(LabTest::parse("Vitamin B12"), LabTest::Other("VITAMINB12".into()));
        assert_eq!(LabTest::parse("vitamin-b12"), LabTest::parse("VITAMIN B12"));
        assert!(!LabTest::parse("TSH").is_known());
        assert_eq!(LabTest::parse("TSH").code(), "TSH");
    }

    #[test]
    fn codes_and_the_liver_panel() {
        assert_eq!(LabTest::parse("Total bilirubin").code(), "BILI");
        assert_eq!(LabTest::parse("SGPT").to_string(), "ALT");
        assert!(LabTest::parse("Bilirubin").is_liver());
        assert!(LabTest::parse("SGOT").is_liver() && LabTest::parse("SGOT").is_transaminase());
        assert!(!LabTest::parse("ALP").is_liver());
        assert!(!LabTest::parse("Bilirubin").is_transaminase());
    }

    #[test]
    fn every_spelling_belongs_to_one_test() {
        let mut seen = std::collections::BTreeSet::new();
        for (_, spellings) in KNOWN {
            for s in *spellings {
                assert!(seen.insert(*s), "{s} is listed twice");
                assert_eq!(normalise(s), *s, "{s} is not normalised");
            }
        }
    }

    #[test]
    fn unit_spellings_normalise() {
        assert_eq!(LabUnit::parse("10^9 /L"), LabUnit::parse("10^9/l"));
        assert_eq!(LabUnit::parse("µmol/L").as_str(), "umol/l");
        assert_eq!(LabUnit::parse("μmol/L"), LabUnit::parse("umol/L"));
        assert_eq!(LabUnit::parse("×10^9/L").as_str(), "x10^9/l");
        assert_ne!(LabUnit::parse("g/dL"), LabUnit::parse("g/L"));
    }
}
