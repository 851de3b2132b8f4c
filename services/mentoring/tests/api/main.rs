//! Mentoring against the real Postgres and the real gRPC server.

mod common;

mod advisors;
mod continuity;
mod matching;
mod paging;
mod partner_feed;
mod requests;
mod server;
mod sessions;
mod sweeper;
