//! `BuyerService` over gRPC: one file per resource (the registry, vetting,
//! matching, matches and deals, consultations, sample tests, trade-show
//! leads, markets). Handlers check the caller, turn the request into a
//! validated command, apply the rules and store the change with its events
//! in one transaction; the generated adapter forwards each RPC to them.

mod consultations;
pub(crate) mod leads;
mod markets;
pub(crate) mod matches;
mod matching;
mod registry;
mod samples;
mod vetting;

use std::sync::Arc;

use onestop_contracts::buyers::v1 as pb;
use onestop_platform::time::Clock;
use onestop_platform::{ApiError, ApiResult, Caller, Role};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::access;
use crate::store::{self, Lock};

/// Everyone who may look at buyers and matches.
const READERS: &[Role] = &[
    Role::TradeOffice,
    Role::Agency,
    Role::Advisor,
    Role::Service,
    Role::Admin,
    Role::Dashboard,
];
/// Who keeps the registry: the offices that find buyers, and admins.
const REGISTRARS: &[Role] = &[Role::TradeOffice, Role::Admin];
/// Who moves matches and records deals: the buyer's office, intake and the
/// wiring acting for the company, admins.
const MATCH_WRITERS: &[Role] = &[Role::TradeOffice, Role::Service, Role::Admin];
/// Who searches for buyers on a company's behalf.
const SEARCHERS: &[Role] = &[
    Role::TradeOffice,
    Role::Agency,
    Role::Advisor,
    Role::Service,
    Role::Admin,
];
/// The company's side: intake relaying it, or an admin.
const COMPANY_SIDE: &[Role] = &[Role::Service, Role::Admin];

#[derive(Clone)]
pub struct BuyersApi {
    pool: PgPool,
    clock: Arc<dyn Clock>,
}

impl BuyersApi {
    pub fn new(pool: PgPool, clock: Arc<dyn Clock>) -> Self {
        Self { pool, clock }
    }
}

onestop_contracts::impl_buyer_service!(BuyersApi);

/// A trade office acts only on its own office's records. Anything else
/// reads as absent, so one office never learns what another has.
fn check_office(
    caller: &Caller,
    office: &str,
    what: &str,
    id: impl std::fmt::Display,
) -> ApiResult<()> {
    match caller.tenant_for(Role::TradeOffice) {
        Some(own) if own != office => Err(ApiError::not_found(what, id)),
        _ => Ok(()),
    }
}

/// The office a listing is limited to: a trade office's own, whatever the
/// request named; otherwise the one the request named, if any.
fn listed_office(caller: &Caller, requested: Option<String>) -> Option<String> {
    match caller.tenant_for(Role::TradeOffice) {
        Some(own) => Some(own.to_owned()),
        None => requested,
    }
}

/// The match `id` as `caller` may act on it: NOT_FOUND when it is another
/// office's, or of a company an agency or advisor does not work with.
async fn office_match(
    conn: &mut PgConnection,
    caller: &Caller,
    id: Uuid,
    lock: Lock,
) -> ApiResult<pb::Match> {
    let found = store::load_match(conn, id, lock)
        .await?
        .ok_or_else(|| ApiError::not_found("match", id))?;
    check_office(caller, match_office(&found), "match", id)?;
    if matches!(caller.role, Role::Agency | Role::Advisor) {
        access::check_company(conn, caller, &found.company_id, "match", id).await?;
    }
    Ok(found)
}

/// The office that found the match's buyer.
fn match_office(m: &pb::Match) -> &str {
    m.buyer
        .as_ref()
        .map(|b| b.trade_office_id.as_str())
        .unwrap_or_default()
}

fn match_buyer_id(m: &pb::Match) -> String {
    m.buyer
        .as_ref()
        .map(|b| b.buyer_id.clone())
        .unwrap_or_default()
}
