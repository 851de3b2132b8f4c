//! OneStop intake: the one door. Companies register once and are diagnosed
//! for export readiness and placed on the growth ladder; cases collect their
//! needs and route each to the service that owns it.

pub mod domain;
pub mod follow;
pub mod grpc;
pub mod handoff;
pub mod needs;
pub mod startup;
pub mod store;
pub mod upstreams;
