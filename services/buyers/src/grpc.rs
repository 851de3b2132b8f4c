//! `BuyerService` handlers: check the caller, validate into domain types,
//! apply the rules, store the change with its events in one transaction.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use onestop_contracts::buyers::v1 as pb;
use onestop_contracts::buyers::v1::buyer_service_server::BuyerService;
use onestop_contracts::common::v1::{CompanySnapshot, NeedCategory};
use onestop_platform::error::parse_id;
use onestop_platform::events::{self, NewEvent};
use onestop_platform::idempotency::IdempotencyKey;
use onestop_platform::pagination::Page;
use onestop_platform::time::{Clock, from_timestamp, to_timestamp};
use onestop_platform::{ApiError, ApiResult, Caller, Role, Violations};
use sqlx::PgPool;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::domain::buyer::{self, BuyerProfile, Decision, VettingStatus};
use crate::domain::lifecycle::MatchStatus;
use crate::domain::matching::{self, MatchQuery};
use crate::domain::{followup, slots};
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
        let profile = violations.required("profile", request.profile.as_ref(), BuyerProfile::parse);
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
        // Intake hands every buyers-owned need here. A trade-show follow-up
        // starts from the company's own leads (ImportTradeShowLeads), so its
        // search is recorded without proposals; the others propose buyers
        // (for a sample test, the candidates to send the sample to).
        let proposes = match NeedCategory::try_from(request.category) {
            Ok(
                NeedCategory::BuyerDiscovery
                | NeedCategory::MarketDiversification
                | NeedCategory::SampleTestMarketing,
            ) => true,
            Ok(NeedCategory::TradeShowFollowUp) => false,
            _ => {
                violations.add(
                    "category",
                    "a buyers need: BUYER_DISCOVERY, MARKET_DIVERSIFICATION, SAMPLE_TEST_MARKETING or TRADE_SHOW_FOLLOW_UP",
                );
                false
            }
        };
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
        let found = if proposes {
            let open = store::open_match_buyers(&mut tx, &query.company_id).await?;
            let fresh_since = buyer::freshness_cutoff(now);
            store::find_buyers(&mut tx, &query, fresh_since, &open, count).await?
        } else {
            Vec::new()
        };
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
                        case_id: current.case_id.clone(),
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
                    case_id: deal.case_id.clone(),
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

fn slot_proto(zone: chrono_tz::Tz, slot: &slots::Slot) -> pb::ConsultationSlot {
    pb::ConsultationSlot {
        start_time: Some(to_timestamp(slot.start)),
        end_time: Some(to_timestamp(slot.end)),
        buyer_time_zone: zone.name().to_owned(),
        buyer_local_start: slots::local_string(zone, slot.start),
        seoul_time_zone: slots::SEOUL.name().to_owned(),
        seoul_local_start: slots::local_string(slots::SEOUL, slot.start),
        overseas_desk: slot.overseas_desk,
    }
}

fn buyer_zone(m: &pb::Match) -> ApiResult<chrono_tz::Tz> {
    let zone = m
        .buyer
        .as_ref()
        .map(|b| b.time_zone.as_str())
        .unwrap_or_default();
    buyer::parse_time_zone(zone)
        .map_err(|_| ApiError::Internal(anyhow::anyhow!("stored buyer zone does not parse")))
}

fn not_open_for_consultation(status: MatchStatus) -> ApiError {
    ApiError::failed_precondition(
        "MATCH_NOT_OPEN_FOR_CONSULTATION",
        format!(
            "consultations are arranged for INTRODUCED, MEETING_SCHEDULED or NEGOTIATING matches; this one is {}",
            status.as_str()
        ),
    )
}

fn non_empty(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_owned())
}

/// Parses a certification name: upper-case letters, digits, spaces, '-'.
fn certification(text: &str) -> Result<String, &'static str> {
    let name = text.trim().to_uppercase();
    if name.is_empty()
        || name.len() > 40
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == ' ' || c == '-')
    {
        return Err("a certification name such as FDA or HALAL");
    }
    Ok(name)
}

fn rating(field: &str, value: u32, violations: &mut Violations) {
    if !(1..=5).contains(&value) {
        violations.add(field, "1 to 5");
    }
}

impl BuyersApi {
    async fn list_consultation_slots(
        &self,
        caller: Caller,
        request: pb::ListConsultationSlotsRequest,
    ) -> ApiResult<pb::ListConsultationSlotsResponse> {
        caller.require(MATCH_WRITERS)?;
        let mut violations = Violations::default();
        let id = uuid_field("match_id", &request.match_id, &mut violations);
        let from = request.from.as_ref().and_then(from_timestamp);
        let to = request.to.as_ref().and_then(from_timestamp);
        if from.is_none() {
            violations.add("from", "required");
        }
        if to.is_none() {
            violations.add("to", "required");
        }
        if let (Some(from), Some(to)) = (from, to)
            && (to <= from || to - from > chrono::Duration::days(slots::MAX_RANGE_DAYS))
        {
            violations.add(
                "to",
                format!("after from, at most {} days later", slots::MAX_RANGE_DAYS),
            );
        }
        violations.finish()?;
        let (Some(id), Some(from), Some(to)) = (id, from, to) else {
            return Err(ApiError::invalid("from", "invalid"));
        };
        let mut conn = self.pool.acquire().await?;
        let found = store::load_match(&mut conn, id, false)
            .await?
            .ok_or_else(|| ApiError::not_found("match", id))?;
        check_office(&caller, match_office(&found), "match", id)?;
        let status = match_status(&found)?;
        if !status.allows_consultation() {
            return Err(not_open_for_consultation(status));
        }
        let zone = buyer_zone(&found)?;
        let buyer_id = parse_id("buyer_id", &match_buyer_id(&found))?;
        let booked = store::booked_starts(&mut conn, buyer_id, &found.company_id, from, to).await?;
        let free = slots::slots_between(
            from,
            to,
            zone,
            slots::BusinessHours::default(),
            request.overseas_desk,
        )
        .into_iter()
        .filter(|slot| !booked.contains(&slot.start))
        .map(|slot| slot_proto(zone, &slot))
        .collect();
        Ok(pb::ListConsultationSlotsResponse { slots: free })
    }

    async fn book_consultation(
        &self,
        caller: Caller,
        request: pb::BookConsultationRequest,
    ) -> ApiResult<pb::Consultation> {
        caller.require(MATCH_WRITERS)?;
        let key = IdempotencyKey::new(
            &caller,
            "BookConsultation",
            &request.idempotency_key,
            &request,
        )?;
        let mut violations = Violations::default();
        let id = uuid_field("match_id", &request.match_id, &mut violations);
        let start = request.start_time.as_ref().and_then(from_timestamp);
        if start.is_none() {
            violations.add("start_time", "required");
        }
        if !request.interpreter_language.is_empty() {
            violations.check(
                "interpreter_language",
                onestop_domain::LanguageCode::parse(&request.interpreter_language),
            );
        }
        violations.finish()?;
        let (Some(id), Some(start)) = (id, start) else {
            return Err(ApiError::invalid("start_time", "invalid"));
        };
        let now = self.now();
        let mut tx = self.pool.begin().await?;
        if let Some(first) = key.replay::<pb::Consultation>(&mut tx).await? {
            return Ok(first);
        }
        let found = store::load_match(&mut tx, id, true)
            .await?
            .ok_or_else(|| ApiError::not_found("match", id))?;
        check_office(&caller, match_office(&found), "match", id)?;
        let status = match_status(&found)?;
        if !status.allows_consultation() {
            return Err(not_open_for_consultation(status));
        }
        let zone = buyer_zone(&found)?;
        let Some(slot) = slots::slot_at(
            start,
            zone,
            slots::BusinessHours::default(),
            request.overseas_desk,
        ) else {
            return Err(ApiError::invalid(
                "start_time",
                "not a slot: starts must sit on the half hour inside both parties' business hours \
                 (Korean night hours need overseas_desk)",
            ));
        };
        if slot.start <= now {
            return Err(ApiError::invalid("start_time", "must be in the future"));
        }
        let buyer_id = parse_id("buyer_id", &match_buyer_id(&found))?;
        let consultation_id = Uuid::now_v7();
        let inserted = store::insert_consultation(
            &mut tx,
            &store::NewConsultation {
                id: consultation_id,
                matched: &found,
                buyer_id,
                start: slot.start,
                end: slot.end,
                buyer_time_zone: zone.name(),
                interpreter_language: &request.interpreter_language,
                overseas_desk: slot.overseas_desk,
            },
            now,
        )
        .await;
        if let Err(error) = inserted {
            if store::is_unique_violation(&error, None) {
                return Err(ApiError::AlreadyExists {
                    reason: "SLOT_TAKEN",
                    message: "the buyer or the company already has a consultation in this slot"
                        .into(),
                    metadata: vec![],
                });
            }
            return Err(error.into());
        }
        let mut new_events = Vec::new();
        if status == MatchStatus::Introduced {
            store::move_match(
                &mut tx,
                id,
                &store::Move {
                    from: status,
                    to: MatchStatus::MeetingScheduled,
                    reason: None,
                    actor: &caller.subject,
                    note: "consultation booked",
                },
                now,
            )
            .await?;
            new_events.push(advanced_event(
                &found,
                status,
                MatchStatus::MeetingScheduled,
                0,
            ));
        }
        new_events.push(NewEvent::new(
            "consultation.booked",
            "match",
            id,
            &pb::ConsultationBooked {
                consultation_id: consultation_id.to_string(),
                match_id: id.to_string(),
                need_id: found.need_id.clone(),
                company_id: found.company_id.clone(),
                buyer_id: buyer_id.to_string(),
                start_time: Some(to_timestamp(slot.start)),
                end_time: Some(to_timestamp(slot.end)),
                buyer_time_zone: zone.name().to_owned(),
                interpreter_language: request.interpreter_language.clone(),
                overseas_desk: slot.overseas_desk,
                case_id: found.case_id.clone(),
            },
        ));
        events::append_all(&mut tx, new_events).await?;
        let consultation = pb::Consultation {
            consultation_id: consultation_id.to_string(),
            match_id: id.to_string(),
            company_id: found.company_id.clone(),
            buyer_id: buyer_id.to_string(),
            slot: Some(slot_proto(zone, &slot)),
            interpreter_language: request.interpreter_language.clone(),
            booked_at: Some(to_timestamp(now)),
        };
        key.record(&mut tx, &consultation, &id.to_string()).await?;
        tx.commit().await?;
        Ok(consultation)
    }

    async fn start_sample_test(
        &self,
        caller: Caller,
        request: pb::StartSampleTestRequest,
    ) -> ApiResult<pb::SampleTest> {
        caller.require(SEARCHERS)?;
        let key = IdempotencyKey::new(
            &caller,
            "StartSampleTest",
            &request.idempotency_key,
            &request,
        )?;
        let mut violations = Violations::default();
        let company_id = text_field(
            "company_id",
            &request.company_id,
            true,
            200,
            &mut violations,
        );
        let product = text_field(
            "product_name",
            &request.product_name,
            true,
            200,
            &mut violations,
        );
        let hs_code = violations.check("hs_code", onestop_domain::HsCode::parse(&request.hs_code));
        let need_id = text_field("need_id", &request.need_id, false, 200, &mut violations);
        let case_id = text_field("case_id", &request.case_id, false, 200, &mut violations);
        if request.buyer_ids.is_empty() || request.buyer_ids.len() > 50 {
            violations.add("buyer_ids", "1 to 50 buyers");
        }
        let mut buyer_ids = Vec::new();
        for (i, text) in request.buyer_ids.iter().enumerate() {
            let field = format!("buyer_ids[{i}]");
            if let Some(id) = uuid_field(&field, text, &mut violations) {
                if buyer_ids.contains(&id) {
                    violations.add(field, "listed twice");
                } else {
                    buyer_ids.push(id);
                }
            }
        }
        let now = self.now();
        let mut tx = self.pool.begin().await?;
        let summaries = store::buyer_summaries(&mut tx, &buyer_ids).await?;
        for (i, id) in buyer_ids.iter().enumerate() {
            match summaries.get(id) {
                Some((_, matchable_until)) if *matchable_until > now => {}
                _ => violations.add(
                    format!("buyer_ids[{i}]"),
                    "not a matchable (verified, freshly vetted) buyer",
                ),
            }
        }
        violations.finish()?;
        let hs_code = hs_code.ok_or_else(|| ApiError::invalid("hs_code", "invalid"))?;
        if let Some(first) = key.replay::<pb::SampleTest>(&mut tx).await? {
            return Ok(first);
        }
        let id = Uuid::now_v7();
        store::insert_sample_test(
            &mut tx,
            &store::NewSampleTest {
                id,
                company_id: &company_id,
                product_name: &product,
                hs_code: hs_code.as_str(),
                buyer_ids: &buyer_ids,
                need_id: &need_id,
                case_id: &case_id,
            },
            now,
        )
        .await?;
        events::append(
            &mut tx,
            NewEvent::new(
                "sample.started",
                "sample_test",
                id,
                &pb::SampleTestStarted {
                    sample_test_id: id.to_string(),
                    company_id: company_id.clone(),
                    need_id,
                    case_id,
                    hs_code: hs_code.as_str().to_owned(),
                    buyer_ids: buyer_ids.iter().map(Uuid::to_string).collect(),
                },
            ),
        )
        .await?;
        let test = store::load_sample_test(&mut tx, id, false)
            .await?
            .ok_or_else(|| internal("sample test"))?;
        key.record(&mut tx, &test, &id.to_string()).await?;
        tx.commit().await?;
        Ok(test)
    }

    async fn record_sample_feedback(
        &self,
        caller: Caller,
        request: pb::RecordSampleFeedbackRequest,
    ) -> ApiResult<pb::SampleFeedback> {
        caller.require(MATCH_WRITERS)?;
        let key = IdempotencyKey::new(
            &caller,
            "RecordSampleFeedback",
            &request.idempotency_key,
            &request,
        )?;
        let mut violations = Violations::default();
        let test_id = uuid_field("sample_test_id", &request.sample_test_id, &mut violations);
        let buyer_id = uuid_field("buyer_id", &request.buyer_id, &mut violations);
        let ratings = request.ratings.unwrap_or_default();
        if request.ratings.is_none() {
            violations.add("ratings", "required");
        } else {
            rating("ratings.price", ratings.price, &mut violations);
            rating("ratings.quality", ratings.quality, &mut violations);
            rating("ratings.packaging", ratings.packaging, &mut violations);
            rating("ratings.labelling", ratings.labelling, &mut violations);
        }
        let gaps = crate::domain::parse_list(
            "certification_gaps",
            &request.certification_gaps,
            certification,
            &mut violations,
        );
        let comment = text_field("comment", &request.comment, false, 2000, &mut violations);
        violations.finish()?;
        let (Some(test_id), Some(buyer_id)) = (test_id, buyer_id) else {
            return Err(ApiError::invalid("sample_test_id", "invalid"));
        };
        let now = self.now();
        let mut tx = self.pool.begin().await?;
        if let Some(first) = key.replay::<pb::SampleFeedback>(&mut tx).await? {
            return Ok(first);
        }
        let test = store::load_sample_test(&mut tx, test_id, true)
            .await?
            .ok_or_else(|| ApiError::not_found("sample test", test_id))?;
        if !test.buyer_ids.contains(&buyer_id.to_string()) {
            return Err(ApiError::invalid(
                "buyer_id",
                "not one of this sample test's buyers",
            ));
        }
        let summaries = store::buyer_summaries(&mut tx, &[buyer_id]).await?;
        let (summary, _) = summaries
            .get(&buyer_id)
            .ok_or_else(|| ApiError::not_found("buyer", buyer_id))?;
        check_office(&caller, &summary.trade_office_id, "buyer", buyer_id)?;
        let feedback_id = Uuid::now_v7();
        let feedback = pb::SampleFeedback {
            feedback_id: feedback_id.to_string(),
            sample_test_id: test_id.to_string(),
            buyer_id: buyer_id.to_string(),
            country: summary.country.clone(),
            ratings: Some(ratings),
            certification_gaps: gaps.clone(),
            would_order: request.would_order,
            comment,
            recorded_at: Some(to_timestamp(now)),
        };
        if let Err(error) =
            store::insert_feedback(&mut tx, &feedback, feedback_id, test_id, buyer_id, now).await
        {
            if store::is_unique_violation(&error, None) {
                return Err(ApiError::AlreadyExists {
                    reason: "FEEDBACK_EXISTS",
                    message: "this buyer already gave feedback on the sample".into(),
                    metadata: vec![("buyer_id", buyer_id.to_string())],
                });
            }
            return Err(error.into());
        }
        store::complete_sample_test(&mut tx, test_id, now).await?;
        let mut new_events = vec![NewEvent::new(
            "sample.feedback",
            "sample_test",
            test_id,
            &pb::SampleFeedbackRecorded {
                sample_test_id: test_id.to_string(),
                feedback_id: feedback_id.to_string(),
                company_id: test.company_id.clone(),
                need_id: test.need_id.clone(),
                buyer_id: buyer_id.to_string(),
                ratings: Some(ratings),
                would_order: request.would_order,
                certification_gap_count: gaps.len() as u32,
                case_id: test.case_id.clone(),
            },
        )];
        for gap in &gaps {
            new_events.push(NewEvent::new(
                "sample.certification_gap",
                "sample_test",
                test_id,
                &pb::SampleCertificationGap {
                    sample_test_id: test_id.to_string(),
                    feedback_id: feedback_id.to_string(),
                    company_id: test.company_id.clone(),
                    need_id: test.need_id.clone(),
                    case_id: test.case_id.clone(),
                    buyer_id: buyer_id.to_string(),
                    hs_code: test.hs_code.clone(),
                    certification: gap.clone(),
                    country: summary.country.clone(),
                },
            ));
        }
        events::append_all(&mut tx, new_events).await?;
        let stored = store::list_feedback(&mut tx, test_id, Some(feedback_id))
            .await?
            .pop()
            .ok_or_else(|| internal("feedback"))?;
        key.record(&mut tx, &stored, &test_id.to_string()).await?;
        tx.commit().await?;
        Ok(stored)
    }

    async fn get_sample_test_report(
        &self,
        caller: Caller,
        request: pb::GetSampleTestReportRequest,
    ) -> ApiResult<pb::SampleTestReport> {
        caller.require(READERS)?;
        let id = parse_id("sample_test_id", &request.sample_test_id)?;
        let mut conn = self.pool.acquire().await?;
        let test = store::load_sample_test(&mut conn, id, false)
            .await?
            .ok_or_else(|| ApiError::not_found("sample test", id))?;
        let feedback = store::list_feedback(&mut conn, id, None).await?;
        Ok(crate::domain::sample::report(test, feedback))
    }

    async fn import_trade_show_leads(
        &self,
        caller: Caller,
        request: pb::ImportTradeShowLeadsRequest,
    ) -> ApiResult<pb::ImportTradeShowLeadsResponse> {
        caller.require(SEARCHERS)?;
        let key = IdempotencyKey::new(
            &caller,
            "ImportTradeShowLeads",
            &request.idempotency_key,
            &request,
        )?;
        let mut violations = Violations::default();
        text_field(
            "company_id",
            &request.company_id,
            true,
            200,
            &mut violations,
        );
        text_field("show_name", &request.show_name, true, 200, &mut violations);
        violations.check(
            "show_country",
            onestop_domain::CountryCode::parse(&request.show_country),
        );
        text_field("show_city", &request.show_city, false, 200, &mut violations);
        let show_date = request.show_date.as_ref().and_then(from_timestamp);
        if show_date.is_none() {
            violations.add("show_date", "required");
        }
        if request.leads.is_empty() || request.leads.len() > 500 {
            violations.add("leads", "1 to 500 leads");
        }
        let mut leads = Vec::new();
        for (i, lead) in request.leads.iter().enumerate() {
            let at = |name: &str| format!("leads[{i}].{name}");
            let name = text_field(
                &at("buyer_company_name"),
                &lead.buyer_company_name,
                true,
                200,
                &mut violations,
            );
            violations.check(
                at("country"),
                onestop_domain::CountryCode::parse(&lead.country),
            );
            let city = text_field(&at("city"), &lead.city, false, 200, &mut violations);
            let codes = crate::domain::parse_list(
                &at("hs_codes"),
                &lead.hs_codes,
                onestop_domain::HsInterest::parse,
                &mut violations,
            );
            let contacts = buyer::parse_contacts(&at("contacts"), &lead.contacts, &mut violations);
            let note = text_field(&at("note"), &lead.note, false, 2000, &mut violations);
            let buyer_id = (!lead.buyer_id.is_empty())
                .then(|| uuid_field(&at("buyer_id"), &lead.buyer_id, &mut violations))
                .flatten();
            leads.push((
                pb::LeadProfile {
                    buyer_company_name: name,
                    country: lead.country.clone(),
                    city,
                    contacts,
                    hs_codes: codes.iter().map(|c| c.as_str().to_owned()).collect(),
                    note,
                    buyer_id: lead.buyer_id.clone(),
                },
                buyer_id,
            ));
        }
        violations.finish()?;
        let show_date = show_date.ok_or_else(|| ApiError::invalid("show_date", "required"))?;
        let now = self.now();
        let mut tx = self.pool.begin().await?;
        if let Some(first) = key
            .replay::<pb::ImportTradeShowLeadsResponse>(&mut tx)
            .await?
        {
            return Ok(first);
        }
        let show_id = store::upsert_trade_show(&mut tx, &request, show_date).await?;
        let checkpoints: Vec<_> = followup::CHECKPOINTS
            .iter()
            .map(|kind| (*kind, followup::due_at(show_date, *kind)))
            .collect();
        let (mut ids, mut created) = (Vec::new(), 0u32);
        for (lead, buyer_id) in &leads {
            let inserted = store::insert_lead(
                &mut tx,
                show_id,
                &request.company_id,
                lead,
                *buyer_id,
                &checkpoints,
                now,
            )
            .await?;
            let id = match inserted {
                Some(id) => {
                    created += 1;
                    id
                }
                None => store::lead_id_by_name(
                    &mut tx,
                    show_id,
                    &lead.buyer_company_name,
                    &lead.country,
                )
                .await?
                .ok_or_else(|| internal("lead"))?,
            };
            ids.push(id);
        }
        let loaded = store::load_leads(&mut tx, &ids, true).await?;
        let response = pb::ImportTradeShowLeadsResponse {
            trade_show_id: show_id.to_string(),
            already_present: loaded.len() as u32 - created,
            created,
            leads: loaded,
        };
        key.record(&mut tx, &response, &show_id.to_string()).await?;
        tx.commit().await?;
        Ok(response)
    }

    async fn record_follow_up(
        &self,
        caller: Caller,
        request: pb::RecordFollowUpRequest,
    ) -> ApiResult<pb::Lead> {
        caller.require(SEARCHERS)?;
        let key = IdempotencyKey::new(
            &caller,
            "RecordFollowUp",
            &request.idempotency_key,
            &request,
        )?;
        let mut violations = Violations::default();
        let id = uuid_field("lead_id", &request.lead_id, &mut violations);
        if !followup::is_valid_outcome(request.outcome) {
            violations.add(
                "outcome",
                "NO_CONTACT, IN_TOUCH, SAMPLE_REQUESTED, NEGOTIATING or AGREEMENT",
            );
        }
        let now = self.now();
        let occurred_at = request.occurred_at.as_ref().map(from_timestamp);
        let occurred_at = match occurred_at {
            None => Some(now),
            Some(Some(at)) if at <= now => Some(at),
            Some(_) => {
                violations.add("occurred_at", "a time not in the future");
                None
            }
        };
        text_field("note", &request.note, false, 2000, &mut violations);
        violations.finish()?;
        let (Some(id), Some(occurred_at)) = (id, occurred_at) else {
            return Err(ApiError::invalid("lead_id", "invalid"));
        };
        let mut tx = self.pool.begin().await?;
        if let Some(first) = key.replay::<pb::Lead>(&mut tx).await? {
            return Ok(first);
        }
        let (status, best) = store::lock_lead(&mut tx, id)
            .await?
            .ok_or_else(|| ApiError::not_found("lead", id))?;
        if status == "CONVERTED" {
            return Err(ApiError::failed_precondition(
                "LEAD_CONVERTED",
                "the lead already reached an agreement",
            ));
        }
        let best = best.max(request.outcome);
        let next_status = if request.outcome == pb::FollowUpOutcome::Agreement as i32 {
            "CONVERTED"
        } else if status == "REACTIVATION" && followup::is_progress(best) {
            // Progress takes the lead off the reactivation list.
            "CADENCE_COMPLETED"
        } else {
            status.as_str()
        };
        store::record_follow_up(&mut tx, id, request.outcome, occurred_at, next_status).await?;
        let lead = store::load_leads(&mut tx, &[id], true)
            .await?
            .pop()
            .ok_or_else(|| internal("lead"))?;
        key.record(&mut tx, &lead, &id.to_string()).await?;
        tx.commit().await?;
        Ok(lead)
    }

    fn lead_filter(
        &self,
        company_id: &str,
        show: &str,
        violations: &mut Violations,
    ) -> store::LeadFilter {
        store::LeadFilter {
            company_id: non_empty(company_id),
            trade_show_id: (!show.is_empty())
                .then(|| uuid_field("trade_show_id", show, violations))
                .flatten(),
        }
    }

    async fn list_due_follow_ups(
        &self,
        caller: Caller,
        request: pb::ListDueFollowUpsRequest,
    ) -> ApiResult<pb::ListDueFollowUpsResponse> {
        caller.require(READERS)?;
        let mut violations = Violations::default();
        let page = Page::parse(request.page.as_ref(), "page", &mut violations);
        let filter = self.lead_filter(&request.company_id, &request.trade_show_id, &mut violations);
        let after = page.after.as_deref().and_then(|key| {
            let mut parts = key.split('|');
            Some((
                DateTime::parse_from_rfc3339(parts.next()?)
                    .ok()?
                    .with_timezone(&Utc),
                Uuid::parse_str(parts.next()?).ok()?,
                parts.next()?.parse().ok()?,
            ))
        });
        violations.finish()?;
        let mut due = store::due_checkpoints(&self.pool, &filter, &page, after).await?;
        let next_page_token = page.finish(&mut due, |(lead, kind, at)| {
            format!("{}|{lead}|{kind}", at.to_rfc3339())
        });
        let ids: Vec<Uuid> = due.iter().map(|(lead, _, _)| *lead).collect();
        let mut conn = self.pool.acquire().await?;
        let leads = store::load_leads(&mut conn, &ids, false).await?;
        let due = leads
            .into_iter()
            .zip(due)
            .map(|(lead, (_, kind, _))| {
                let checkpoint = lead.checkpoints.iter().find(|c| c.kind == kind).cloned();
                pb::LeadCheckpoint {
                    lead: Some(lead),
                    checkpoint,
                }
            })
            .collect();
        Ok(pb::ListDueFollowUpsResponse {
            due,
            next_page_token,
        })
    }

    async fn list_reactivation_leads(
        &self,
        caller: Caller,
        request: pb::ListReactivationLeadsRequest,
    ) -> ApiResult<pb::ListReactivationLeadsResponse> {
        caller.require(READERS)?;
        let mut violations = Violations::default();
        let page = Page::parse(request.page.as_ref(), "page", &mut violations);
        let filter = self.lead_filter(&request.company_id, &request.trade_show_id, &mut violations);
        let after = page
            .after
            .as_deref()
            .and_then(|key| Uuid::parse_str(key).ok());
        violations.finish()?;
        let mut ids = store::reactivation_leads(&self.pool, &filter, &page, after).await?;
        let next_page_token = page.finish(&mut ids, Uuid::to_string);
        let mut conn = self.pool.acquire().await?;
        let leads = store::load_leads(&mut conn, &ids, false).await?;
        Ok(pb::ListReactivationLeadsResponse {
            leads,
            next_page_token,
        })
    }

    async fn recommend_markets(
        &self,
        caller: Caller,
        request: pb::RecommendMarketsRequest,
    ) -> ApiResult<pb::RecommendMarketsResponse> {
        caller.require(READERS)?;
        let mut violations = Violations::default();
        if request.hs_codes.is_empty() {
            violations.add("hs_codes", "at least one HS code");
        }
        let codes = crate::domain::parse_list(
            "hs_codes",
            &request.hs_codes,
            onestop_domain::HsInterest::parse,
            &mut violations,
        );
        let mut skip: Vec<String> = crate::domain::parse_list(
            "blocked_markets",
            &request.blocked_markets,
            onestop_domain::CountryCode::parse,
            &mut violations,
        )
        .iter()
        .map(|c| c.as_str().to_owned())
        .collect();
        skip.extend(
            crate::domain::parse_list(
                "exclude_markets",
                &request.exclude_markets,
                onestop_domain::CountryCode::parse,
                &mut violations,
            )
            .iter()
            .map(|c| c.as_str().to_owned()),
        );
        let limit = match request.limit {
            0 => 10,
            n if n > 50 => {
                violations.add("limit", "1 to 50");
                n
            }
            n => n,
        };
        violations.finish()?;
        let codes: Vec<String> = codes.iter().map(|c| c.as_str().to_owned()).collect();
        let demand = store::market_demand(
            &self.pool,
            &codes,
            &skip,
            buyer::freshness_cutoff(self.now()),
        )
        .await?;
        Ok(pb::RecommendMarketsResponse {
            markets: crate::domain::markets::rank_markets(demand, limit),
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
        handle(request, |caller, req| {
            self.list_consultation_slots(caller, req)
        })
        .await
    }
    async fn book_consultation(
        &self,
        request: Request<pb::BookConsultationRequest>,
    ) -> Result<Response<pb::Consultation>, Status> {
        handle(request, |caller, req| self.book_consultation(caller, req)).await
    }
    async fn start_sample_test(
        &self,
        request: Request<pb::StartSampleTestRequest>,
    ) -> Result<Response<pb::SampleTest>, Status> {
        handle(request, |caller, req| self.start_sample_test(caller, req)).await
    }
    async fn record_sample_feedback(
        &self,
        request: Request<pb::RecordSampleFeedbackRequest>,
    ) -> Result<Response<pb::SampleFeedback>, Status> {
        handle(request, |caller, req| {
            self.record_sample_feedback(caller, req)
        })
        .await
    }
    async fn get_sample_test_report(
        &self,
        request: Request<pb::GetSampleTestReportRequest>,
    ) -> Result<Response<pb::SampleTestReport>, Status> {
        handle(request, |caller, req| {
            self.get_sample_test_report(caller, req)
        })
        .await
    }
    async fn import_trade_show_leads(
        &self,
        request: Request<pb::ImportTradeShowLeadsRequest>,
    ) -> Result<Response<pb::ImportTradeShowLeadsResponse>, Status> {
        handle(request, |caller, req| {
            self.import_trade_show_leads(caller, req)
        })
        .await
    }
    async fn record_follow_up(
        &self,
        request: Request<pb::RecordFollowUpRequest>,
    ) -> Result<Response<pb::Lead>, Status> {
        handle(request, |caller, req| self.record_follow_up(caller, req)).await
    }
    async fn list_due_follow_ups(
        &self,
        request: Request<pb::ListDueFollowUpsRequest>,
    ) -> Result<Response<pb::ListDueFollowUpsResponse>, Status> {
        handle(request, |caller, req| self.list_due_follow_ups(caller, req)).await
    }
    async fn list_reactivation_leads(
        &self,
        request: Request<pb::ListReactivationLeadsRequest>,
    ) -> Result<Response<pb::ListReactivationLeadsResponse>, Status> {
        handle(request, |caller, req| {
            self.list_reactivation_leads(caller, req)
        })
        .await
    }
    async fn recommend_markets(
        &self,
        request: Request<pb::RecommendMarketsRequest>,
    ) -> Result<Response<pb::RecommendMarketsResponse>, Status> {
        handle(request, |caller, req| self.recommend_markets(caller, req)).await
    }
}
