//! Intake's rules, free of I/O: what a valid company profile is, how
//! readiness is scored, which needs a case gets and who owns each.

pub mod case;
pub mod company;
pub mod ladder;
pub mod markets;
pub mod owner_events;
pub mod partner;
pub mod readiness;
pub mod request;
