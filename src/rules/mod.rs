//! Safety rules: loading, checking and evaluating them.

pub mod progression;
