//! OneStop buyer discovery: the registry of overseas buyers the trade
//! offices find and vet, explained matching of verified buyers to
//! companies, the match lifecycle up to a deal, consultations across time
//! zones, sample test marketing, trade-show follow-up and alternative
//! markets.
//!
//! `grpc` is the transport, `domain` the rules and the validated commands,
//! `store` all the SQL; `registry` (registering a buyer) is the step both
//! the API and the CSV import take, `sweeper` raises follow-ups in the
//! background, `withdrawal` closes the search of a need cancelled at
//! intake, and `admin` holds the command-line tasks.

pub mod access;
pub mod admin;
pub mod domain;
pub mod erasure;
pub mod grpc;
pub mod registry;
pub mod startup;
pub mod store;
pub mod sweeper;
pub mod withdrawal;
