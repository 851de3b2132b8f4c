//! `IntakeService` over gRPC: one file per resource (companies, their
//! assessments, cases, the case timeline, erasure of personal data, who
//! works with whom, partners' webhooks). Partners read and change only
//! the companies they work with (see `crate::access`).
//! Handlers check the caller, turn the request into a validated command,
//! apply the rules and store the change with its events in one
//! transaction; the generated adapter forwards each RPC to them.

mod assessments;
mod cases;
mod companies;
mod deals;
mod erasure;
mod partners;
mod programs;
mod requests;
mod timeline;
mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use onestop_platform::Role;
use onestop_platform::client::ServiceCredentials;
use sqlx::PgPool;
use tokio::sync::Notify;
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

/// The owners intake asks on a partner's behalf: referral for its
/// directory, buyers for the company's answer on a deal.
#[derive(Clone)]
pub struct Downstreams {
    /// `None` when ONESTOP_REFERRAL_URL is unset.
    pub referral: Option<Channel>,
    /// `None` when ONESTOP_BUYERS_URL is unset.
    pub buyers: Option<Channel>,
    pub credentials: ServiceCredentials,
}

/// What the webhook RPCs share with the dispatcher.
#[derive(Clone)]
pub struct WebhookRegistry {
    /// Rung on every change, so the dispatcher starts or stops workers at
    /// once.
    pub changed: Arc<Notify>,
    /// How long a rotated-out secret keeps signing.
    pub secret_overlap: Duration,
}

#[derive(Clone)]
pub struct IntakeApi {
    pool: PgPool,
    downstreams: Downstreams,
    webhooks: WebhookRegistry,
}

impl IntakeApi {
    pub fn new(pool: PgPool, downstreams: Downstreams, webhooks: WebhookRegistry) -> Self {
        Self {
            pool,
            downstreams,
            webhooks,
        }
    }
}

onestop_contracts::impl_intake_service!(IntakeApi);
