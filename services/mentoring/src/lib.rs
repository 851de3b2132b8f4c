//! OneStop mentoring: one export advisor per company for at least three
//! years. The advisor pool, explained matching, a visible waitlist, warm
//! handovers, session logs, the home-doctor contact cadence and the fee
//! ledger of fee-charging programs.
//!
//! `grpc` is the transport, `domain` the rules, `store` all the SQL;
//! `continuity` (assigning, queueing and replacing advisors) holds the
//! moves both the API and the background `sweeper` make; `withdrawal`
//! withdraws the request of a need cancelled at intake;
//! `agency_requests` keeps the companies' overdue requests to agencies for
//! their advisors; `admin` holds the command-line tasks.

pub mod access;
pub mod admin;
pub mod agency_requests;
pub mod continuity;
pub mod domain;
pub mod erasure;
pub mod grpc;
pub mod ladder;
pub mod startup;
pub mod store;
pub mod sweeper;
pub mod withdrawal;
