//! What a rule kind is: the `Kind` trait every kind implements in its own file, and the
//! `rule_kinds!` macro that turns the one declaration list in `rules/mod.rs` into the
//! `RuleKind` enum, its names and every dispatch (loading, evaluating, cohort totals).

use super::{Context, Contribution, Finding, Totals};
use crate::model::SubjectHistory;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;

/// One kind of rule. `Params` is what the rule file holds (serde, unknown keys refused);
/// `check` turns it, once, at load, into the runtime rule: everything serde cannot see is
/// refused there, and whatever can be derived (compiled conditions, resolved criteria) is
/// derived there, never per evaluation.
pub trait Kind: Sized + std::fmt::Debug + Clone + Send + Sync + 'static {
    /// The kind's name in rule files (`kind: lab`).
    const NAME: &'static str;
    /// The YAML parameters (often `Self`).
    type Params: DeserializeOwned + 'static;

    /// The runtime rule, or the problem as (path under the rule, message), e.g.
    /// `("times_uln.at_least", "must be a positive multiple")`.
    fn check(params: Self::Params) -> Result<Self, (String, String)>;

    /// Findings for one subject's history. Cohort kinds return only what they could not
    /// evaluate for this subject.
    fn evaluate(&self, history: &SubjectHistory, ctx: &Context) -> Vec<Finding>;

    /// A subject's part in a cohort rule; None for subject-level kinds.
    fn contribution(&self, _history: &SubjectHistory, _as_of: DateTime<Utc>) -> Option<Contribution> {
        None
    }

    /// The cohort-level findings from the cohort's totals; none for subject-level kinds.
    fn judge(&self, _totals: &Totals, _ctx: &Context) -> Vec<Finding> {
        Vec::new()
    }

    /// Cohort kinds judge the whole cohort from each subject's contribution.
    fn is_cohort(&self) -> bool {
        false
    }

    /// Kinds whose findings change with the clock, not only with new records: the daemon
    /// evaluates them on a timer too.
    fn is_time_driven(&self) -> bool {
        false
    }
}

/// Reads a kind's parameters from its part of the rule mapping. The loader implements it,
/// since it knows where each key is in the file.
pub(crate) trait ParamsReader {
    type Error;
    fn read<T: DeserializeOwned>(self) -> Result<T, Self::Error>;
}

/// The second loading step of a kind: `Kind::check` on parameters already read. It runs
/// after the common keys are read, so their errors come first, as they always have.
pub(crate) type Prepare = Box<dyn FnOnce() -> Result<super::RuleKind, (String, String)>>;

/// Declares the rule kinds: `Variant(module::Type)`, one per line. Generates each kind's
/// `mod` and `pub use`, the `RuleKind` enum, `KIND_NAMES` and the dispatch of every `Kind`
/// method.
macro_rules! rule_kinds {
    ($($variant:ident($module:ident::$ty:ident)),+ $(,)?) => {
        $(
            mod $module;
            pub use $module::$ty;
        )+

        #[derive(Debug, Clone)]
        pub enum RuleKind {
            $($variant($ty),)+
        }

        /// Every kind's name in rule files, in declaration order (for errors and "did you mean").
        pub const KIND_NAMES: &[&str] = &[$(<$ty as Kind>::NAME,)+];

        impl RuleKind {
            pub fn name(&self) -> &'static str {
                match self {
                    $(Self::$variant(_) => <$ty as Kind>::NAME,)+
                }
            }

            /// Reads the parameters of the kind named `name`; None for an unknown kind.
            pub(crate) fn read<R: kind::ParamsReader>(
                name: &str,
                reader: R,
            ) -> Option<Result<kind::Prepare, R::Error>> {
                $(
                    if name == <$ty as Kind>::NAME {
                        return Some(reader.read::<<$ty as Kind>::Params>().map(|params| {
                            Box::new(move || <$ty as Kind>::check(params).map(Self::$variant)) as kind::Prepare
                        }));
                    }
                )+
                None
            }

            pub fn evaluate(&self, history: &SubjectHistory, ctx: &Context) -> Vec<Finding> {
                match self {
                    $(Self::$variant(r) => r.evaluate(history, ctx),)+
                }
            }

            pub fn contribution(&self, history: &SubjectHistory, as_of: DateTime<Utc>) -> Option<Contribution> {
                match self {
                    $(Self::$variant(r) => r.contribution(history, as_of),)+
                }
            }

            pub fn judge(&self, totals: &Totals, ctx: &Context) -> Vec<Finding> {
                match self {
                    $(Self::$variant(r) => r.judge(totals, ctx),)+
                }
            }

            /// Cohort rules judge the whole cohort from each subject's contribution.
            pub fn is_cohort(&self) -> bool {
                match self {
                    $(Self::$variant(r) => r.is_cohort(),)+
                }
            }

            /// Rules whose findings change with the clock, not only with new records: the
            /// daemon evaluates them on a timer too.
            pub fn is_time_driven(&self) -> bool {
                match self {
                    $(Self::$variant(r) => r.is_time_driven(),)+
                }
            }
        }
    };
}
