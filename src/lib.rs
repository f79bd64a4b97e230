//! vigil: safety and adverse-event monitoring for clinical trials.
//!
//! The pipeline, one module per stage:
//! sources (`ingest`) → `store` → evaluate (`rules`) → `alerts` → `notify`, plus `report`.

pub mod model;
pub mod report;
pub mod rules;
