//! Buyers against the real Postgres and the real gRPC server.

mod common;

mod buyers;
mod matches;
mod matching;
