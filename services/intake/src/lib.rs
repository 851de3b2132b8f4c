//! OneStop intake: the one door. Companies register once and are diagnosed
//! for export readiness and placed on the growth ladder; cases collect their
//! needs and route each to the service that owns it.
//!
//! `grpc` is the transport, `domain` the rules, `store` all the SQL,
//! `access` who may read and change which company's records, and
//! `relationships` who works with whom, `requests` the company's requests
//! and complaints as they move;
//! `handoff` (the relay that delivers each need to its owner), `follow`
//! (following the owners' feeds onto the case), `needs` (recording a
//! need), `lifecycle` (needs finishing, cases closing) and `webhooks`
//! (partners' events pushed to their endpoints) are the steps the API and
//! the background tasks take.

pub mod access;
pub mod domain;
pub mod follow;
pub mod grpc;
pub mod handoff;
pub mod ladder;
pub mod lifecycle;
pub mod needs;
pub mod relationships;
pub mod requests;
pub mod startup;
pub mod store;
pub mod upstreams;
pub mod webhooks;
