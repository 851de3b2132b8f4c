//! Intake against the real Postgres and the real gRPC server.

mod common;
mod wired;

mod access;
mod auth;
mod cases;
mod companies;
mod deals;
mod diagnosis;
mod erasure;
mod feed;
mod handoff;
mod idempotency;
mod ladder;
mod lifecycle;
mod matrix;
mod owners;
mod process;
mod programs;
mod registration;
mod requests;
mod server;
mod webhooks;
