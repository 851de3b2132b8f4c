//! Insights against the real Postgres: the real referral server and owner
//! databases with real event logs as the feeds, the real insights server on
//! port 0, called through the generated clients (and over gRPC-Web).

mod common;

mod access;
mod projections;
mod report;
mod scenario;
mod watch;
mod web;
