//! Random well-typed requests to every RPC of the four live services, in a
//! test binary of its own: cargo runs test binaries one after another, so
//! its bursts of calls never share the machine with the api tests' timing.

// The api tests' harness; this binary uses part of it.
#[allow(dead_code, unused_imports)]
#[path = "../api/common.rs"]
mod common;
mod random_requests;
