//! OneStop intake: the one door. Companies register once and are diagnosed
//! for export readiness and placed on the growth ladder; cases collect their
//! needs and route each to the service that owns it.
//!
//! `grpc` is the transport, `domain` the rules, `store` all the SQL;
//! `handoff` (the relay that delivers each need to its owner), `follow`
//! (following the owners' feeds onto the case) and `needs` (recording a
//! need) are the steps the API and the background tasks take.

pub mod domain;
pub mod follow;
pub mod grpc;
pub mod handoff;
pub mod needs;
pub mod startup;
pub mod store;
pub mod upstreams;
