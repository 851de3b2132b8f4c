//! Mentoring's rules: validated input, explained matching, the cadence.

pub mod advisor;
pub mod cadence;
pub mod matching;
pub mod request;
pub mod session;
