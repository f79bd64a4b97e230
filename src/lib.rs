//! vigil: safety and adverse-event monitoring for clinical trials.
//!
//! The pipeline, one module per stage:
//! sources (`ingest`) → `store` → evaluate (`rules`) → `alerts` → `notify`, plus `report`.
//! `accounts` and `audit` say who did what (Part 11).
//! `evaluate` takes pending subjects through the rules into alerts; `clock` is where every
//! stage asks the time. `daemon` wires them together; `http` serves the API.

pub mod access;
pub mod accounts;
pub mod alerts;
pub mod audit;
pub mod clock;
pub mod config;
pub mod console;
pub mod daemon;
pub mod evaluate;
pub mod http;
pub mod ingest;
pub mod metrics;
pub mod model;
pub mod notify;
pub mod publish;
pub mod report;
pub mod rules;
pub mod store;
pub mod validation;
