//! OneStop mentoring: one export advisor per company for at least three
//! years. The advisor pool, explained matching, a visible waitlist, warm
//! handovers, session logs, the home-doctor contact cadence and the fee
//! ledger of fee-charging programs.

pub mod continuity;
pub mod domain;
pub mod grpc;
pub mod seed;
pub mod startup;
pub mod store;
pub mod sweeper;
