//! Buyers against the real Postgres and the real gRPC server.

mod common;

mod access;
mod bench;
mod buyers;
mod consultations;
mod followups;
mod import;
mod markets;
mod matches;
mod matching;
mod pages;
mod partner_feed;
mod samples;
