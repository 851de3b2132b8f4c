//! OneStop buyer discovery: the registry of overseas buyers the trade
//! offices find and vet, explained matching of verified buyers to
//! companies, the match lifecycle up to a deal, consultations across time
//! zones, sample test marketing, trade-show follow-up and alternative
//! markets.

pub mod admin;
pub mod domain;
pub mod grpc;
pub mod seed;
pub mod startup;
pub mod store;
pub mod sweeper;
