//! `ReferralService` over gRPC: one file per resource (the directory, the
//! referrals). Handlers check the caller, turn the request into a validated
//! command, apply the rules and store the change with its events in one
//! transaction; the generated adapter forwards each RPC to them.

mod directory;
pub(crate) mod referrals;

use std::sync::Arc;

use onestop_platform::time::Clock;
use sqlx::PgPool;

#[derive(Clone)]
pub struct ReferralApi {
    pool: PgPool,
    clock: Arc<dyn Clock>,
}

impl ReferralApi {
    pub fn new(pool: PgPool, clock: Arc<dyn Clock>) -> Self {
        Self { pool, clock }
    }
}

onestop_contracts::impl_referral_service!(ReferralApi);
