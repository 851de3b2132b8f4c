//! Intake against the real Postgres and the real gRPC server.

mod common;

mod auth;
mod cases;
mod companies;
mod diagnosis;
mod erasure;
mod feed;
mod handoff;
mod idempotency;
mod process;
mod registration;
mod server;
