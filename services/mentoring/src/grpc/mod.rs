//! `MentoringService` over gRPC: one file per resource (advisors,
//! assignments, the waitlist, continuity, sessions, the contact cadence,
//! fees). Handlers check the caller, turn the request into a validated
//! command, call the continuity moves and the store, and commit the change
//! with its events in one transaction; the generated adapter forwards each
//! RPC to them.

mod advisors;
mod assignments;
mod cadence;
mod continuity;
mod fees;
mod sessions;
mod waitlist;

use std::sync::Arc;

use onestop_platform::time::Clock;
use onestop_platform::{Caller, Role};
use sqlx::PgPool;
use uuid::Uuid;

use crate::continuity::Rules;

/// Who may read the pool, assignments and sessions; advisor tokens only
/// their own.
const READERS: &[Role] = &[Role::Admin, Role::Service, Role::Dashboard, Role::Advisor];
/// Internal readers that see every advisor's records.
const OVERSEERS: &[Role] = &[Role::Admin, Role::Service, Role::Dashboard];
/// Who changes the pool and moves companies between advisors.
const ADMINS: &[Role] = &[Role::Admin];

#[derive(Clone)]
pub struct MentoringApi {
    pool: PgPool,
    rules: Rules,
    clock: Arc<dyn Clock>,
}

impl MentoringApi {
    pub fn new(pool: PgPool, rules: Rules, clock: Arc<dyn Clock>) -> Self {
        Self { pool, rules, clock }
    }
}

onestop_contracts::impl_mentoring_service!(MentoringApi);

/// The advisor an advisor token acts for; None for every other role.
fn own_advisor(caller: &Caller) -> Option<Uuid> {
    caller
        .tenant_for(Role::Advisor)
        .and_then(|tenant| Uuid::parse_str(tenant).ok())
}

/// Advisors read only their own records; anyone else's look absent.
fn visible_to<'a>(caller: &Caller, mut advisor_ids: impl Iterator<Item = &'a str>) -> bool {
    if caller.role != Role::Advisor {
        return true;
    }
    let Some(own) = own_advisor(caller).map(|own| own.to_string()) else {
        return false;
    };
    advisor_ids.any(|id| id == own)
}

/// The advisor filter a listing runs with: advisor tokens see only their
/// own records, so asking for another advisor's finds nothing (the nil id
/// matches no advisor).
fn pinned_to_own(caller: &Caller, requested: Option<Uuid>) -> Option<Uuid> {
    if caller.role != Role::Advisor {
        return requested;
    }
    let own = own_advisor(caller).unwrap_or_default();
    match requested {
        Some(other) if other != own => Some(Uuid::nil()),
        _ => Some(own),
    }
}
