//! The expression language of rules: CEL (in progress).
