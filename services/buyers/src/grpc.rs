//! `BuyerService` handlers: check the caller, validate into domain types,
//! apply the rules, store the change with its events in one transaction.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use onestop_contracts::buyers::v1 as pb;
use onestop_contracts::buyers::v1::buyer_service_server::BuyerService;
use onestop_contracts::common::v1::{CompanySnapshot, NeedCategory};
use onestop_platform::events::{self, NewEvent};
use onestop_platform::idempotency::IdempotencyKey;
use onestop_platform::pagination::Page;
use onestop_platform::time::{Clock, from_timestamp};
use onestop_platform::{ApiError, ApiResult, Caller, Role, Violations};
use sqlx::PgPool;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::domain::buyer::{self, BuyerProfile, Decision, VettingStatus};
use crate::domain::lifecycle::MatchStatus;
use crate::domain::matching::{self, MatchQuery};
use crate::domain::{text_field, uuid_field};
use crate::store;

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

/// Default number of buyers proposed when the hand-off names no count.
const DEFAULT_PROPOSALS: u32 = 5;
const MAX_PROPOSALS: u32 = 50;

#[derive(Clone)]
pub struct BuyersApi {
    pool: PgPool,
    clock: Arc<dyn Clock>,
}

impl BuyersApi {
    pub fn new(pool: PgPool, clock: Arc<dyn Clock>) -> Self {
        Self { pool, clock }
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }
}

fn parse_id(field: &str, text: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(text).map_err(|_| ApiError::invalid(field, "a UUID returned by this API"))
}

fn internal(what: &str) -> ApiError {
    ApiError::Internal(anyhow::anyhow!("{what} vanished in its own transaction"))
}

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

/// Contacts are for the office that found the buyer and for admins.
fn redact_buyer(caller: &Caller, mut buyer: pb::Buyer) -> pb::Buyer {
    if !matches!(caller.role, Role::TradeOffice | Role::Admin)
        && let Some(profile) = buyer.profile.as_mut()
    {
        profile.contacts.clear();
    }
    buyer
}

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

fn match_status(m: &pb::Match) -> ApiResult<MatchStatus> {
    MatchStatus::from_proto(m.status)
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("match with unknown status")))
}

fn advanced_event(m: &pb::Match, from: MatchStatus, to: MatchStatus, reason: i32) -> NewEvent {
    NewEvent::new(
        "match.advanced",
        "match",
        &m.match_id,
        &pb::MatchAdvanced {
            match_id: m.match_id.clone(),
            need_id: m.need_id.clone(),
            case_id: m.case_id.clone(),
            company_id: m.company_id.clone(),
            buyer_id: match_buyer_id(m),
            from: from.to_proto() as i32,
            to: to.to_proto() as i32,
            no_deal_reason: reason,
        },
    )
}

/// The result of registering one buyer.
pub enum Registered {
    New(Box<pb::Buyer>),
    /// The office already has a buyer with this external reference.
    Existing(Uuid),
}

fn already_registered(existing: Uuid) -> ApiError {
    ApiError::AlreadyExists {
        reason: "BUYER_EXISTS",
        message: format!("this office already registered the buyer as {existing}"),
        metadata: vec![("buyer_id", existing.to_string())],
    }
}

/// Stores a validated buyer for `office` with its event, unless the office
/// already has one with the same external reference. Shared by the RPC and
/// the CSV import so both apply the same rules.
pub async fn register_buyer(
    pool: &PgPool,
    key: Option<&IdempotencyKey>,
    office: &str,
    profile: &BuyerProfile,
    now: DateTime<Utc>,
) -> ApiResult<Registered> {
    let mut tx = pool.begin().await?;
    if let Some(key) = key
        && let Some(first) = key.replay::<pb::Buyer>(&mut tx).await?
    {
        return Ok(Registered::New(Box::new(first)));
    }
    if let Some(reference) = &profile.external_ref
        && let Some(existing) = store::buyer_id_by_external_ref(&mut tx, office, reference).await?
    {
        return Ok(Registered::Existing(existing));
    }
    let id = Uuid::now_v7();
    if let Err(error) = store::insert_buyer(&mut tx, id, office, profile, now).await {
        // A concurrent registration of the same reference won the race.
        if store::is_unique_violation(&error, None)
            && let Some(reference) = &profile.external_ref
        {
            drop(tx);
            let mut conn = pool.acquire().await?;
            if let Some(existing) =
                store::buyer_id_by_external_ref(&mut conn, office, reference).await?
            {
                return Ok(Registered::Existing(existing));
            }
        }
        return Err(error.into());
    }
    events::append(
        &mut tx,
        NewEvent::new(
            "buyer.registered",
            "buyer",
            id,
            &pb::BuyerRegistered {
                buyer_id: id.to_string(),
                trade_office_id: office.to_owned(),
                country: profile.country.as_str().to_owned(),
                hs_codes: profile
                    .hs_codes
                    .iter()
                    .map(|c| c.as_str().to_owned())
                    .collect(),
                languages: profile
                    .languages
                    .iter()
                    .map(|c| c.as_str().to_owned())
                    .collect(),
            },
        ),
    )
    .await?;
    let buyer = store::load_buyer(&mut tx, id, false, true, now)
        .await?
        .ok_or_else(|| internal("buyer"))?;
    if let Some(key) = key {
        key.record(&mut tx, &buyer, &id.to_string()).await?;
    }
    tx.commit().await?;
    tracing::info!(buyer_id = %id, trade_office_id = office, "buyer registered");
    Ok(Registered::New(Box::new(buyer)))
}

impl BuyersApi {
    async fn register_buyer(
        &self,
        caller: Caller,
        request: pb::RegisterBuyerRequest,
    ) -> ApiResult<pb::Buyer> {
        caller.require(REGISTRARS)?;
        let key =
            IdempotencyKey::new(&caller, "RegisterBuyer", &request.idempotency_key, &request)?;
        let mut violations = Violations::default();
        let office = match caller.tenant_for(Role::TradeOffice) {
            Some(own) => {
                if !request.trade_office_id.is_empty() && request.trade_office_id != own {
                    return Err(ApiError::PermissionDenied(
                        "a trade office registers buyers for its own office only".into(),
                    ));
                }
                own.to_owned()
            }
            None => text_field(
                "trade_office_id",
                &request.trade_office_id,
                true,
                100,
                &mut violations,
            ),
        };
        let profile = match &request.profile {
            Some(profile) => BuyerProfile::parse(profile, "profile", &mut violations),
            None => {
                violations.add("profile", "required");
                None
            }
        };
        violations.finish()?;
        let profile = profile.ok_or_else(|| ApiError::invalid("profile", "invalid"))?;
        match register_buyer(&self.pool, Some(&key), &office, &profile, self.now()).await? {
            Registered::New(buyer) => Ok(*buyer),
            Registered::Existing(existing) => Err(already_registered(existing)),
        }
    }

    async fn get_buyer(
        &self,
        caller: Caller,
        request: pb::GetBuyerRequest,
    ) -> ApiResult<pb::Buyer> {
        caller.require(READERS)?;
        let id = parse_id("buyer_id", &request.buyer_id)?;
        let mut conn = self.pool.acquire().await?;
        let buyer = store::load_buyer(&mut conn, id, false, true, self.now())
            .await?
            .ok_or_else(|| ApiError::not_found("buyer", id))?;
        check_office(&caller, &buyer.trade_office_id, "buyer", id)?;
        Ok(redact_buyer(&caller, buyer))
    }

    async fn list_buyers(
        &self,
        caller: Caller,
        request: pb::ListBuyersRequest,
    ) -> ApiResult<pb::ListBuyersResponse> {
        caller.require(READERS)?;
        let mut violations = Violations::default();
        let page = Page::parse(request.page.as_ref(), "page", &mut violations);
        let office = match caller.tenant_for(Role::TradeOffice) {
            Some(own) if !request.trade_office_id.is_empty() && request.trade_office_id != own => {
                return Err(ApiError::PermissionDenied(
                    "a trade office lists its own office's buyers only".into(),
                ));
            }
            Some(own) => Some(own.to_owned()),
            None => (!request.trade_office_id.is_empty()).then(|| request.trade_office_id.clone()),
        };
        let country = (!request.country.is_empty())
            .then(|| {
                violations.check(
                    "country",
                    onestop_domain::CountryCode::parse(&request.country),
                )
            })
            .flatten()
            .map(|c| c.as_str().to_owned());
        let status = match request.vetting_status {
            0 => None,
            value => {
                let status = VettingStatus::from_proto(value);
                if status.is_none() {
                    violations.add("vetting_status", "UNVERIFIED, VERIFIED or REJECTED");
                }
                status
            }
        };
        let hs_prefix = (!request.hs_code.is_empty())
            .then(|| {
                violations.check(
                    "hs_code",
                    onestop_domain::HsInterest::parse(&request.hs_code),
                )
            })
            .flatten()
            .map(|c| c.as_str().to_owned());
        let after = page
            .after
            .as_deref()
            .and_then(|key| Uuid::parse_str(key).ok());
        violations.finish()?;
        let now = self.now();
        let filter = store::BuyerFilter {
            office,
            country,
            status,
            hs_prefix,
            matchable_since: request.matchable_only.then(|| buyer::freshness_cutoff(now)),
        };
        let mut buyers = store::list_buyers(&self.pool, &filter, &page, after, now).await?;
        let next_page_token = page.finish(&mut buyers, |b| b.buyer_id.clone());
        Ok(pb::ListBuyersResponse {
            buyers: buyers
                .into_iter()
                .map(|b| redact_buyer(&caller, b))
                .collect(),
            next_page_token,
        })
    }

    async fn vet_buyer(
        &self,
        caller: Caller,
        request: pb::VetBuyerRequest,
    ) -> ApiResult<pb::Buyer> {
        caller.require(REGISTRARS)?;
        let key = IdempotencyKey::new(&caller, "VetBuyer", &request.idempotency_key, &request)?;
        let mut violations = Violations::default();
        let id = uuid_field("buyer_id", &request.buyer_id, &mut violations);
        let decision = Decision::parse(&request, &mut violations);
        violations.finish()?;
        let (Some(id), Some(decision)) = (id, decision) else {
            return Err(ApiError::invalid("status", "invalid"));
        };
        let now = self.now();
        let mut tx = self.pool.begin().await?;
        if let Some(first) = key.replay::<pb::Buyer>(&mut tx).await? {
            return Ok(first);
        }
        let current = store::load_buyer(&mut tx, id, true, false, now)
            .await?
            .ok_or_else(|| ApiError::not_found("buyer", id))?;
        check_office(&caller, &current.trade_office_id, "buyer", id)?;
        let previous = current
            .vetting
            .as_ref()
            .map(|v| v.status)
            .unwrap_or_default();
        let vetted_by = caller
            .tenant_for(Role::TradeOffice)
            .unwrap_or("admin")
            .to_owned();
        store::record_vetting(&mut tx, id, &decision, &vetted_by, now).await?;
        events::append(
            &mut tx,
            NewEvent::new(
                "buyer.vetted",
                "buyer",
                id,
                &pb::BuyerVetted {
                    buyer_id: id.to_string(),
                    trade_office_id: current.trade_office_id.clone(),
                    status: decision.status.to_proto() as i32,
                    previous_status: previous,
                    quality_score: decision.quality_score,
                    criteria_met: decision.criteria.iter().map(|c| *c as i32).collect(),
                },
            ),
        )
        .await?;
        let buyer = store::load_buyer(&mut tx, id, false, true, now)
            .await?
            .ok_or_else(|| internal("buyer"))?;
        key.record(&mut tx, &buyer, &id.to_string()).await?;
        tx.commit().await?;
        tracing::info!(buyer_id = %id, status = decision.status.as_str(), "buyer vetted");
        Ok(buyer)
    }

    async fn find_buyers(
        &self,
        caller: Caller,
        request: pb::FindBuyersRequest,
    ) -> ApiResult<pb::FindBuyersResponse> {
        caller.require(SEARCHERS)?;
        let mut violations = Violations::default();
        let limit = match request.limit {
            0 => matching::DEFAULT_LIMIT,
            n if n > matching::MAX_LIMIT => {
                violations.add("limit", format!("1 to {}", matching::MAX_LIMIT));
                n
            }
            n => n,
        };
        let query = MatchQuery::parse(
            request.company.as_ref(),
            &request.target_markets,
            &request.hs_codes,
            &request.languages,
            limit,
            &mut violations,
        );
        violations.finish()?;
        let query = query.ok_or_else(|| ApiError::invalid("company", "invalid"))?;
        let mut conn = self.pool.acquire().await?;
        let found = store::find_buyers(
            &mut conn,
            &query,
            buyer::freshness_cutoff(self.now()),
            &[],
            query.limit,
        )
        .await?;
        Ok(pb::FindBuyersResponse {
            candidates: found
                .into_iter()
                .enumerate()
                .map(|(i, (buyer, score))| pb::BuyerCandidate {
                    buyer: Some(buyer),
                    score: Some(score),
                    rank: i as u32 + 1,
                })
                .collect(),
        })
    }

    async fn open_buyer_search(
        &self,
        caller: Caller,
        request: pb::OpenBuyerSearchRequest,
    ) -> ApiResult<pb::BuyerSearch> {
        caller.require(&[Role::Service, Role::Admin])?;
        let mut violations = Violations::default();
        let need_id = text_field("need_id", &request.need_id, true, 200, &mut violations);
        let case_id = text_field("case_id", &request.case_id, false, 200, &mut violations);
        if !matches!(
            NeedCategory::try_from(request.category),
            Ok(NeedCategory::BuyerDiscovery | NeedCategory::MarketDiversification)
        ) {
            violations.add("category", "BUYER_DISCOVERY or MARKET_DIVERSIFICATION");
        }
        let count = match request.count {
            0 => DEFAULT_PROPOSALS,
            n if n > MAX_PROPOSALS => {
                violations.add("count", format!("1 to {MAX_PROPOSALS}"));
                n
            }
            n => n,
        };
        let query = MatchQuery::parse(
            request.company.as_ref(),
            &request.target_markets,
            &request.hs_codes,
            &request.languages,
            count,
            &mut violations,
        );
        violations.finish()?;
        let query = query.ok_or_else(|| ApiError::invalid("company", "invalid"))?;

        // The need is the key; only its company is compared, so a
        // redelivery carrying a fresher snapshot still replays the first.
        let identity = pb::OpenBuyerSearchRequest {
            need_id: need_id.clone(),
            company: Some(CompanySnapshot {
                company_id: query.company_id.clone(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let key = IdempotencyKey::natural("OpenBuyerSearch", &need_id, &identity);
        let now = self.now();
        let mut tx = self.pool.begin().await?;
        if let Some(first) = key.replay::<pb::BuyerSearch>(&mut tx).await? {
            return Ok(first);
        }
        if let Some((existing, company)) = store::search_by_need(&mut tx, &need_id).await? {
            if company != query.company_id {
                return Err(ApiError::failed_precondition(
                    "IDEMPOTENCY_KEY_REUSED",
                    "this need already has a buyer search for another company",
                ));
            }
            return store::load_search(&mut tx, existing)
                .await?
                .ok_or_else(|| internal("search"));
        }
        let search_id = Uuid::now_v7();
        store::insert_search(
            &mut tx,
            search_id,
            &need_id,
            &case_id,
            &query.company_id,
            count,
            now,
        )
        .await?;
        let open = store::open_match_buyers(&mut tx, &query.company_id).await?;
        let found =
            store::find_buyers(&mut tx, &query, buyer::freshness_cutoff(now), &open, count).await?;
        let mut new_events = Vec::new();
        for (i, (summary, score)) in found.iter().enumerate() {
            let buyer_id = parse_id("buyer_id", &summary.buyer_id)?;
            let match_id = Uuid::now_v7();
            let rank = i as u32 + 1;
            store::insert_match(
                &mut tx,
                &store::NewMatch {
                    id: match_id,
                    search_id,
                    need_id: &need_id,
                    case_id: &case_id,
                    company_id: &query.company_id,
                    buyer_id,
                    score,
                    rank,
                },
                &caller.subject,
                now,
            )
            .await?;
            new_events.push(NewEvent::new(
                "match.proposed",
                "match",
                match_id,
                &pb::MatchProposed {
                    match_id: match_id.to_string(),
                    search_id: search_id.to_string(),
                    need_id: need_id.clone(),
                    case_id: case_id.clone(),
                    company_id: query.company_id.clone(),
                    buyer_id: buyer_id.to_string(),
                    buyer_country: summary.country.clone(),
                    score: score.total,
                    rank,
                },
            ));
        }
        events::append_all(&mut tx, new_events).await?;
        let search = store::load_search(&mut tx, search_id)
            .await?
            .ok_or_else(|| internal("search"))?;
        key.record(&mut tx, &search, &search_id.to_string()).await?;
        tx.commit().await?;
        tracing::info!(search_id = %search_id, proposed = found.len(), "buyer search opened");
        Ok(search)
    }

    async fn get_match(
        &self,
        caller: Caller,
        request: pb::GetMatchRequest,
    ) -> ApiResult<pb::Match> {
        caller.require(READERS)?;
        let id = parse_id("match_id", &request.match_id)?;
        let mut conn = self.pool.acquire().await?;
        let found = store::load_match(&mut conn, id, false)
            .await?
            .ok_or_else(|| ApiError::not_found("match", id))?;
        check_office(&caller, match_office(&found), "match", id)?;
        Ok(found)
    }

    async fn list_matches(
        &self,
        caller: Caller,
        request: pb::ListMatchesRequest,
    ) -> ApiResult<pb::ListMatchesResponse> {
        caller.require(READERS)?;
        let mut violations = Violations::default();
        let page = Page::parse(request.page.as_ref(), "page", &mut violations);
        let office = match caller.tenant_for(Role::TradeOffice) {
            Some(own) => Some(own.to_owned()),
            None => (!request.trade_office_id.is_empty()).then(|| request.trade_office_id.clone()),
        };
        let buyer_id = (!request.buyer_id.is_empty())
            .then(|| uuid_field("buyer_id", &request.buyer_id, &mut violations))
            .flatten();
        let mut statuses = Vec::new();
        for (i, value) in request.statuses.iter().enumerate() {
            match MatchStatus::from_proto(*value) {
                Some(status) => statuses.push(status.as_str().to_owned()),
                None => violations.add(format!("statuses[{i}]"), "a match status"),
            }
        }
        let after = page
            .after
            .as_deref()
            .and_then(|key| Uuid::parse_str(key).ok());
        violations.finish()?;
        let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        let filter = store::MatchFilter {
            company_id: non_empty(&request.company_id),
            buyer_id,
            need_id: non_empty(&request.need_id),
            office,
            statuses,
        };
        let mut matches = store::list_matches(&self.pool, &filter, &page, after).await?;
        let next_page_token = page.finish(&mut matches, |m| m.match_id.clone());
        Ok(pb::ListMatchesResponse {
            matches,
            next_page_token,
        })
    }

    async fn advance_match(
        &self,
        caller: Caller,
        request: pb::AdvanceMatchRequest,
    ) -> ApiResult<pb::Match> {
        caller.require(MATCH_WRITERS)?;
        let key = IdempotencyKey::new(&caller, "AdvanceMatch", &request.idempotency_key, &request)?;
        let mut violations = Violations::default();
        let id = uuid_field("match_id", &request.match_id, &mut violations);
        let to = match MatchStatus::from_proto(request.to_status) {
            Some(
                status @ (MatchStatus::Introduced
                | MatchStatus::MeetingScheduled
                | MatchStatus::Negotiating
                | MatchStatus::ClosedNoDeal),
            ) => Some(status),
            Some(MatchStatus::Deal) => {
                violations.add("to_status", "a deal is recorded with RecordDeal");
                None
            }
            _ => {
                violations.add(
                    "to_status",
                    "INTRODUCED, MEETING_SCHEDULED, NEGOTIATING or CLOSED_NO_DEAL",
                );
                None
            }
        };
        let expected = match request.expected_status {
            0 => None,
            value => {
                let status = MatchStatus::from_proto(value);
                if status.is_none() {
                    violations.add("expected_status", "a match status");
                }
                status
            }
        };
        let reason = match pb::NoDealReason::try_from(request.no_deal_reason) {
            Ok(pb::NoDealReason::Unspecified) => None,
            Ok(reason) => Some(reason),
            Err(_) => {
                violations.add("no_deal_reason", "a no-deal reason");
                None
            }
        };
        if to == Some(MatchStatus::ClosedNoDeal) && reason.is_none() {
            violations.add("no_deal_reason", "required to close without a deal");
        }
        if to.is_some() && to != Some(MatchStatus::ClosedNoDeal) && reason.is_some() {
            violations.add("no_deal_reason", "only with CLOSED_NO_DEAL");
        }
        let note = text_field("note", &request.note, false, 2000, &mut violations);
        violations.finish()?;
        let (Some(id), Some(to)) = (id, to) else {
            return Err(ApiError::invalid("to_status", "invalid"));
        };
        let now = self.now();
        let mut tx = self.pool.begin().await?;
        if let Some(first) = key.replay::<pb::Match>(&mut tx).await? {
            return Ok(first);
        }
        let current = store::load_match(&mut tx, id, true)
            .await?
            .ok_or_else(|| ApiError::not_found("match", id))?;
        check_office(&caller, match_office(&current), "match", id)?;
        let from = match_status(&current)?;
        if expected.is_some_and(|e| e != from) {
            return Err(ApiError::failed_precondition(
                "STATUS_CHANGED",
                format!("the match is {} now", from.as_str()),
            ));
        }
        if !from.may_move_to(to) {
            return Err(ApiError::failed_precondition(
                "ILLEGAL_TRANSITION",
                format!("a {} match cannot move to {}", from.as_str(), to.as_str()),
            ));
        }
        store::move_match(
            &mut tx,
            id,
            &store::Move {
                from,
                to,
                reason,
                actor: &caller.subject,
                note: &note,
            },
            now,
        )
        .await?;
        events::append(
            &mut tx,
            advanced_event(
                &current,
                from,
                to,
                reason.map(|r| r as i32).unwrap_or_default(),
            ),
        )
        .await?;
        let updated = store::load_match(&mut tx, id, false)
            .await?
            .ok_or_else(|| internal("match"))?;
        key.record(&mut tx, &updated, &id.to_string()).await?;
        tx.commit().await?;
        Ok(updated)
    }

    async fn record_deal(
        &self,
        caller: Caller,
        request: pb::RecordDealRequest,
    ) -> ApiResult<pb::Deal> {
        caller.require(MATCH_WRITERS)?;
        let key = IdempotencyKey::new(&caller, "RecordDeal", &request.idempotency_key, &request)?;
        let mut violations = Violations::default();
        let id = uuid_field("match_id", &request.match_id, &mut violations);
        let deal_type = match pb::DealType::try_from(request.deal_type) {
            Ok(pb::DealType::Unspecified) | Err(_) => {
                violations.add("deal_type", "EXCLUSIVE_SUPPLY, DISTRIBUTORSHIP or ORDER");
                None
            }
            Ok(deal_type) => Some(deal_type),
        };
        let value = match &request.value {
            None => {
                violations.add("value", "required");
                None
            }
            Some(money) => violations
                .check("value", onestop_domain::Money::parse(money, None))
                .filter(|value| {
                    if value.amount_minor == 0 {
                        violations.add("value.amount_minor", "greater than zero");
                    }
                    value.amount_minor > 0
                }),
        };
        let note = text_field("note", &request.note, false, 2000, &mut violations);
        violations.finish()?;
        let (Some(id), Some(deal_type), Some(value)) = (id, deal_type, value) else {
            return Err(ApiError::invalid("value", "invalid"));
        };
        let now = self.now();
        let mut tx = self.pool.begin().await?;
        if let Some(first) = key.replay::<pb::Deal>(&mut tx).await? {
            return Ok(first);
        }
        let current = store::load_match(&mut tx, id, true)
            .await?
            .ok_or_else(|| ApiError::not_found("match", id))?;
        check_office(&caller, match_office(&current), "match", id)?;
        let from = match_status(&current)?;
        if !from.may_move_to(MatchStatus::Deal) {
            return Err(ApiError::failed_precondition(
                "ILLEGAL_TRANSITION",
                format!(
                    "a deal is recorded on a NEGOTIATING match; this one is {}",
                    from.as_str()
                ),
            ));
        }
        let deal_id = Uuid::now_v7();
        store::insert_deal(
            &mut tx,
            &store::NewDeal {
                id: deal_id,
                matched: &current,
                trade_office_id: match_office(&current),
                deal_type,
                value: &value,
                note: &note,
                recorded_by: &caller.subject,
            },
            now,
        )
        .await?;
        store::move_match(
            &mut tx,
            id,
            &store::Move {
                from,
                to: MatchStatus::Deal,
                reason: None,
                actor: &caller.subject,
                note: &note,
            },
            now,
        )
        .await?;
        events::append_all(
            &mut tx,
            [
                advanced_event(&current, from, MatchStatus::Deal, 0),
                NewEvent::new(
                    "deal.recorded",
                    "match",
                    id,
                    &pb::DealRecorded {
                        deal_id: deal_id.to_string(),
                        match_id: id.to_string(),
                        need_id: current.need_id.clone(),
                        company_id: current.company_id.clone(),
                        buyer_id: match_buyer_id(&current),
                        deal_type: deal_type as i32,
                        value: Some(value.to_proto()),
                    },
                ),
            ],
        )
        .await?;
        let deal = store::load_deal(&mut tx, deal_id, false)
            .await?
            .ok_or_else(|| internal("deal"))?;
        key.record(&mut tx, &deal, &id.to_string()).await?;
        tx.commit().await?;
        Ok(deal)
    }

    async fn confirm_deal(
        &self,
        caller: Caller,
        request: pb::ConfirmDealRequest,
    ) -> ApiResult<pb::Deal> {
        caller.require(&[Role::Service, Role::Admin])?;
        let key = IdempotencyKey::new(&caller, "ConfirmDeal", &request.idempotency_key, &request)?;
        let id = parse_id("deal_id", &request.deal_id)?;
        let mut tx = self.pool.begin().await?;
        if let Some(first) = key.replay::<pb::Deal>(&mut tx).await? {
            return Ok(first);
        }
        let deal = store::load_deal(&mut tx, id, true)
            .await?
            .ok_or_else(|| ApiError::not_found("deal", id))?;
        if deal.confirmed {
            return Ok(deal);
        }
        store::confirm_deal(&mut tx, id, self.now()).await?;
        events::append(
            &mut tx,
            NewEvent::new(
                "deal.confirmed",
                "match",
                &deal.match_id,
                &pb::DealConfirmed {
                    deal_id: deal.deal_id.clone(),
                    match_id: deal.match_id.clone(),
                    need_id: deal.need_id.clone(),
                    company_id: deal.company_id.clone(),
                    buyer_id: deal.buyer_id.clone(),
                },
            ),
        )
        .await?;
        let deal = store::load_deal(&mut tx, id, false)
            .await?
            .ok_or_else(|| internal("deal"))?;
        key.record(&mut tx, &deal, &deal.match_id.clone()).await?;
        tx.commit().await?;
        Ok(deal)
    }

    async fn list_unconfirmed_deals(
        &self,
        caller: Caller,
        request: pb::ListUnconfirmedDealsRequest,
    ) -> ApiResult<pb::ListUnconfirmedDealsResponse> {
        caller.require(&[
            Role::TradeOffice,
            Role::Service,
            Role::Admin,
            Role::Dashboard,
        ])?;
        let mut violations = Violations::default();
        let page = Page::parse(request.page.as_ref(), "page", &mut violations);
        let office = match caller.tenant_for(Role::TradeOffice) {
            Some(own) => Some(own.to_owned()),
            None => (!request.trade_office_id.is_empty()).then(|| request.trade_office_id.clone()),
        };
        let before = request.recorded_before.as_ref().and_then(from_timestamp);
        let after = page.after.as_deref().and_then(|key| {
            let (at, id) = key.split_once('|')?;
            Some((
                DateTime::parse_from_rfc3339(at).ok()?.with_timezone(&Utc),
                Uuid::parse_str(id).ok()?,
            ))
        });
        violations.finish()?;
        let company = (!request.company_id.is_empty()).then_some(request.company_id.as_str());
        let mut deals = store::list_unconfirmed_deals(
            &self.pool,
            office.as_deref(),
            company,
            before,
            &page,
            after,
        )
        .await?;
        let next_page_token = page.finish(&mut deals, |d| {
            let at = d
                .recorded_at
                .as_ref()
                .and_then(from_timestamp)
                .unwrap_or_default();
            format!("{}|{}", at.to_rfc3339(), d.deal_id)
        });
        Ok(pb::ListUnconfirmedDealsResponse {
            deals,
            next_page_token,
        })
    }
}

/// Runs a handler with the caller the auth layer attached.
async fn handle<Req, Resp, F>(
    request: Request<Req>,
    handler: impl FnOnce(Caller, Req) -> F,
) -> Result<Response<Resp>, Status>
where
    F: std::future::Future<Output = ApiResult<Resp>>,
{
    let caller = Caller::of(&request)?;
    Ok(Response::new(handler(caller, request.into_inner()).await?))
}

#[tonic::async_trait]
impl BuyerService for BuyersApi {
    async fn register_buyer(
        &self,
        request: Request<pb::RegisterBuyerRequest>,
    ) -> Result<Response<pb::Buyer>, Status> {
        handle(request, |caller, req| self.register_buyer(caller, req)).await
    }
    async fn get_buyer(
        &self,
        request: Request<pb::GetBuyerRequest>,
    ) -> Result<Response<pb::Buyer>, Status> {
        handle(request, |caller, req| self.get_buyer(caller, req)).await
    }
    async fn list_buyers(
        &self,
        request: Request<pb::ListBuyersRequest>,
    ) -> Result<Response<pb::ListBuyersResponse>, Status> {
        handle(request, |caller, req| self.list_buyers(caller, req)).await
    }
    async fn vet_buyer(
        &self,
        request: Request<pb::VetBuyerRequest>,
    ) -> Result<Response<pb::Buyer>, Status> {
        handle(request, |caller, req| self.vet_buyer(caller, req)).await
    }
    async fn find_buyers(
        &self,
        request: Request<pb::FindBuyersRequest>,
    ) -> Result<Response<pb::FindBuyersResponse>, Status> {
        handle(request, |caller, req| self.find_buyers(caller, req)).await
    }
    async fn open_buyer_search(
        &self,
        request: Request<pb::OpenBuyerSearchRequest>,
    ) -> Result<Response<pb::BuyerSearch>, Status> {
        handle(request, |caller, req| self.open_buyer_search(caller, req)).await
    }
    async fn get_match(
        &self,
        request: Request<pb::GetMatchRequest>,
    ) -> Result<Response<pb::Match>, Status> {
        handle(request, |caller, req| self.get_match(caller, req)).await
    }
    async fn list_matches(
        &self,
        request: Request<pb::ListMatchesRequest>,
    ) -> Result<Response<pb::ListMatchesResponse>, Status> {
        handle(request, |caller, req| self.list_matches(caller, req)).await
    }
    async fn advance_match(
        &self,
        request: Request<pb::AdvanceMatchRequest>,
    ) -> Result<Response<pb::Match>, Status> {
        handle(request, |caller, req| self.advance_match(caller, req)).await
    }
    async fn record_deal(
        &self,
        request: Request<pb::RecordDealRequest>,
    ) -> Result<Response<pb::Deal>, Status> {
        handle(request, |caller, req| self.record_deal(caller, req)).await
    }
    async fn confirm_deal(
        &self,
        request: Request<pb::ConfirmDealRequest>,
    ) -> Result<Response<pb::Deal>, Status> {
        handle(request, |caller, req| self.confirm_deal(caller, req)).await
    }
    async fn list_unconfirmed_deals(
        &self,
        request: Request<pb::ListUnconfirmedDealsRequest>,
    ) -> Result<Response<pb::ListUnconfirmedDealsResponse>, Status> {
        handle(request, |caller, req| {
            self.list_unconfirmed_deals(caller, req)
        })
        .await
    }
    async fn list_consultation_slots(
        &self,
        request: Request<pb::ListConsultationSlotsRequest>,
    ) -> Result<Response<pb::ListConsultationSlotsResponse>, Status> {
        let _ = request;
        Err(Status::unimplemented("list_consultation_slots"))
    }
    async fn book_consultation(
        &self,
        request: Request<pb::BookConsultationRequest>,
    ) -> Result<Response<pb::Consultation>, Status> {
        let _ = request;
        Err(Status::unimplemented("book_consultation"))
    }
    async fn start_sample_test(
        &self,
        request: Request<pb::StartSampleTestRequest>,
    ) -> Result<Response<pb::SampleTest>, Status> {
        let _ = request;
        Err(Status::unimplemented("start_sample_test"))
    }
    async fn record_sample_feedback(
        &self,
        request: Request<pb::RecordSampleFeedbackRequest>,
    ) -> Result<Response<pb::SampleFeedback>, Status> {
        let _ = request;
        Err(Status::unimplemented("record_sample_feedback"))
    }
    async fn get_sample_test_report(
        &self,
        request: Request<pb::GetSampleTestReportRequest>,
    ) -> Result<Response<pb::SampleTestReport>, Status> {
        let _ = request;
        Err(Status::unimplemented("get_sample_test_report"))
    }
    async fn import_trade_show_leads(
        &self,
        request: Request<pb::ImportTradeShowLeadsRequest>,
    ) -> Result<Response<pb::ImportTradeShowLeadsResponse>, Status> {
        let _ = request;
        Err(Status::unimplemented("import_trade_show_leads"))
    }
    async fn record_follow_up(
        &self,
        request: Request<pb::RecordFollowUpRequest>,
    ) -> Result<Response<pb::Lead>, Status> {
        let _ = request;
        Err(Status::unimplemented("record_follow_up"))
    }
    async fn list_due_follow_ups(
        &self,
        request: Request<pb::ListDueFollowUpsRequest>,
    ) -> Result<Response<pb::ListDueFollowUpsResponse>, Status> {
        let _ = request;
        Err(Status::unimplemented("list_due_follow_ups"))
    }
    async fn list_reactivation_leads(
        &self,
        request: Request<pb::ListReactivationLeadsRequest>,
    ) -> Result<Response<pb::ListReactivationLeadsResponse>, Status> {
        let _ = request;
        Err(Status::unimplemented("list_reactivation_leads"))
    }
    async fn recommend_markets(
        &self,
        request: Request<pb::RecommendMarketsRequest>,
    ) -> Result<Response<pb::RecommendMarketsResponse>, Status> {
        let _ = request;
        Err(Status::unimplemented("recommend_markets"))
    }
}
