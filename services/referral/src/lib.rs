//! OneStop agency referral: the directory of agencies and programs with
//! eligibility as data, explained recommendations, and closed-loop
//! referrals that re-route on a decline or a missed response SLA so no
//! need is dropped.

pub mod catalog;
pub mod domain;
pub mod grpc;
pub mod routing;
pub mod seed;
pub mod startup;
pub mod store;
pub mod sweeper;
