//! OneStop insights: follows the four services' event feeds into indicator
//! projections (each event applied once, with its cursor, in one
//! transaction) and serves them as snapshots, live streams and CSV reports,
//! over gRPC and, with the dashboard page, over gRPC-Web.
//!
//! `grpc` is the transport, `domain` the rules, `store` all the SQL;
//! `follow` applies a feed, `changes` tells watchers the figures moved,
//! `indicators` assembles a snapshot, `web` serves the dashboard port.

pub mod changes;
pub mod domain;
pub mod follow;
pub mod grpc;
pub mod indicators;
pub mod startup;
pub mod store;
pub mod web;
