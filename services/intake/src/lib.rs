//! OneStop intake: the one door. Companies register once and are diagnosed
//! for export readiness and placed on the growth ladder; cases collect their
//! needs and route each to the service that owns it.

pub mod domain;
pub mod grpc;
pub mod startup;
pub mod store;
