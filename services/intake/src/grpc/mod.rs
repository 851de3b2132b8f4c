//! `IntakeService` over gRPC: one file per resource (companies, their
//! assessments, cases, the case timeline, erasure of personal data, who
//! works with whom). Partners read and change only the companies they work
//! with (see `crate::access`).
//! Handlers check the caller, turn the request into a validated command,
//! apply the rules and store the change with its events in one
//! transaction; the generated adapter forwards each RPC to them.

mod assessments;
mod cases;
mod companies;
mod erasure;
mod partners;
mod programs;
mod timeline;

use onestop_platform::Role;
use onestop_platform::client::ServiceCredentials;
use sqlx::PgPool;
use tonic::transport::Channel;

/// Partners and services that register companies and open cases.
const WRITERS: &[Role] = &[Role::Agency, Role::Advisor, Role::Service, Role::Admin];
/// Everyone who may read intake's records (partners only those of the
/// companies they work with).
const READERS: &[Role] = &[
    Role::Agency,
    Role::Advisor,
    Role::TradeOffice,
    Role::Service,
    Role::Admin,
    Role::Dashboard,
];

/// How intake reaches referral for its directory.
#[derive(Clone)]
pub struct Directory {
    /// `None` when ONESTOP_REFERRAL_URL is unset.
    pub channel: Option<Channel>,
    pub credentials: ServiceCredentials,
}

#[derive(Clone)]
pub struct IntakeApi {
    pool: PgPool,
    referral: Directory,
}

impl IntakeApi {
    pub fn new(pool: PgPool, referral: Directory) -> Self {
        Self { pool, referral }
    }
}

onestop_contracts::impl_intake_service!(IntakeApi);
