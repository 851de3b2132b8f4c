//! Command-line tasks beside serving.

pub mod seed;
