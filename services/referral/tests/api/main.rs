//! Referral against the real Postgres and the real gRPC server.

mod common;

mod binary;
mod credentials;
mod directory;
mod eligibility;
mod lifecycle;
mod referrals;
mod rerouting;
mod tenancy;
mod tls;
