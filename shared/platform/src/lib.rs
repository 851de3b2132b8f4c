//! What every OneStop service does the same way. One module per concern:
//! configuration, telemetry, the tower layers, server assembly, errors,
//! auth, the database, the event log and feed, idempotency.

// The generated service adapters name this crate by its path, also from
// inside it (the event feed).
extern crate self as onestop_platform;

pub mod audit;
pub mod auth;
pub mod cli;
pub mod client;
pub mod company_feed;
pub mod config;
pub mod crypto;
pub mod db;
pub mod error;
pub mod events;
pub mod feeds;
pub mod fetch;
pub mod follow;
pub mod idempotency;
pub mod layers;
pub mod limits;
pub mod pagination;
pub mod rpc;
pub mod server;
pub mod supervise;
mod tail;
pub mod telemetry;
pub mod time;
pub mod tls;
pub mod watchers;

pub use auth::{Caller, Role};
pub use error::{ApiError, ApiResult, Violations};
