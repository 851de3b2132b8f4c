//! OneStop agency referral: the directory of agencies and programs with
//! eligibility as data, explained recommendations, and closed-loop
//! referrals that re-route on a decline or a missed response SLA so no
//! need is dropped.
//!
//! `grpc` is the transport, `domain` the rules, `store` all the SQL;
//! `catalog` (directory writes), `routing` (where a referral goes) and
//! `withdrawal` (a need cancelled at intake) are
//! the steps both the API and the background `sweeper` take; `admin` holds
//! the command-line tasks.

pub mod admin;
pub mod catalog;
pub mod domain;
pub mod erasure;
pub mod grpc;
pub mod routing;
pub mod startup;
pub mod store;
pub mod sweeper;
pub mod withdrawal;
