//! Domain types: subjects, visits, doses, adverse events, vitals, labs, scores, MRI.

mod edss_change;
mod history;
mod lab_test;
mod record;
mod scales;
mod time;

pub use edss_change::{ChangeStep, MinimumChange};
pub use history::{EdssVisit, SubjectHistory};
pub(crate) use lab_test::normalise as name_key;
pub use lab_test::{LabTest, LabUnit};
pub use record::{
    AdverseEvent, Disposition, DispositionStatus, Dose, FieldError, GradeSource, Lab, Mri, MriReference,
    RawRecord, Record, ReportKind, Score, Submission, Vital,
};
pub use scales::{CtcaeGrade, Edss, Relatedness, Seriousness, SubjectId};
pub use time::{local_day, local_day_start, local_text, ClinicalTime, Precision, TimeParseError, Zones};
