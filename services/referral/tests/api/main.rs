//! Referral against the real Postgres and the real gRPC server.

mod common;

mod binary;
mod credentials;
mod directory;
mod eligibility;
mod lifecycle;
mod partner_feed;
mod referrals;
mod rerouting;
mod tenancy;
mod tls;
