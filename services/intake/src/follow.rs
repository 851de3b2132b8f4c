//! Follows the owners' event feeds and writes what they report onto the
//! case: timeline lines, need progress, needs the owners' findings open,
//! who works with the company (the advisor, the agencies with referral
//! legs, the offices whose buyers are matched), what each owner erased,
//! and which agencies referral's directory holds (a company's request may
//! go to any of them).
//!
//! Each event is applied in a transaction with the cursor that records it,
//! beside the events that arrived with it (see `onestop_platform::follow`).
//! An owner is trusted only with its own records: an event is applied to a
//! need only when the need was handed to that owner and belongs to the case
//! and company the event names, and to a company only when the owner serves
//! it. Anything else is logged (ids only), counted and ignored, so one
//! service cannot move another's needs, open needs on a stranger's case or
//! make itself a partner of a company it does not serve.
//!
//! A feed read again from the start (the owner's database was restored) is
//! harmless: needs only move forward, a found need opens once per case and
//! topic, each owner event writes its timeline line once, and
//! relationships are recorded as states.

use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use onestop_contracts::events::v1::Event;
use onestop_domain::{CountryCode, HsInterest, NeedOwner};
use onestop_platform::follow::{FeedFollower, FeedHandler};
use onestop_platform::time::from_timestamp;
use opentelemetry::KeyValue;
use opentelemetry::metrics::Counter;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::case::{CaseStatus, NeedSpec, NeedStatus, PlannedNeed};
use crate::domain::company::snapshot;
use crate::domain::owner_events::{self, NewNeed, OwnerUpdate, PartnerFact, Subject, feed_name};
use crate::domain::partner::Relationship;
use crate::startup::SERVICE_NAME;
use crate::store::{self, Lock, NewEntry};
use crate::upstreams::Upstreams;
use crate::{lifecycle, needs, relationships};

/// Applies one owner's events.
pub struct OwnerFeed {
    owner: NeedOwner,
}

impl OwnerFeed {
    /// The events of `owner`'s feed, applied as its follower applies them.
    pub fn new(owner: NeedOwner) -> Self {
        Self { owner }
    }
}

/// One follower per configured owner.
pub struct Follower;

impl Follower {
    /// Each with the name of its supervised loop.
    pub fn for_upstreams(
        pool: &PgPool,
        upstreams: &Upstreams,
    ) -> Vec<(&'static str, FeedFollower<OwnerFeed>)> {
        upstreams
            .configured_owners()
            .into_iter()
            .filter_map(|owner| {
                let channel = upstreams.channel(owner)?.clone();
                let name = match owner {
                    NeedOwner::Mentoring => "mentoring-follower",
                    NeedOwner::Buyers => "buyers-follower",
                    NeedOwner::Referral => "referral-follower",
                };
                Some((
                    name,
                    FeedFollower::new(
                        pool.clone(),
                        SERVICE_NAME,
                        feed_name(owner),
                        channel,
                        upstreams.credentials.clone(),
                        owner_events::followed_types(owner),
                        OwnerFeed { owner },
                    ),
                ))
            })
            .collect()
    }
}

impl FeedHandler for OwnerFeed {
    fn apply<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        event: &'a Event,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let source = feed_name(self.owner);
            if let Some(report) = owner_events::erasure_report(self.owner, event) {
                return record_erasure(conn, source, event, &report).await;
            }
            if let Some(agency_id) = owner_events::directory_agency(self.owner, event) {
                store::remember_agency(conn, &agency_id).await?;
                return Ok(());
            }
            let Some(update) = owner_events::interpret(self.owner, event) else {
                return Ok(());
            };
            match place(conn, self.owner, &update).await? {
                Ok(place) => apply_update(conn, source, event, &update, place).await,
                Err(reason) => {
                    reject(source, event, reason);
                    Ok(())
                }
            }
        })
    }
}

/// Owner events that did not fit intake's records, by feed.
fn rejected_counter() -> &'static Counter<u64> {
    static COUNTER: OnceLock<Counter<u64>> = OnceLock::new();
    COUNTER.get_or_init(|| {
        opentelemetry::global::meter("onestop-intake")
            .u64_counter("onestop.intake.owner_events.rejected")
            .with_description(
                "Owner events ignored because they named records the owner does not hold",
            )
            .build()
    })
}

fn reject(source: &'static str, event: &Event, reason: &'static str) {
    tracing::warn!(
        source,
        event_id = event.id,
        event_type = %event.r#type,
        aggregate_id = %event.aggregate_id,
        reason,
        "owner event does not fit intake's records; ignored"
    );
    rejected_counter().add(
        1,
        &[
            KeyValue::new("source", source),
            KeyValue::new("reason", reason),
        ],
    );
}

/// Where an update belongs once checked against intake's records: the
/// company, and the case and need when there is one.
struct Place {
    company_id: Uuid,
    case: Option<(Uuid, Option<Uuid>)>,
}

fn named_id(text: &str) -> Result<Option<Uuid>, &'static str> {
    if text.is_empty() {
        return Ok(None);
    }
    Uuid::parse_str(text)
        .map(Some)
        .map_err(|_| "names an id that is not one")
}

/// Checks the update against intake's records: `Err` says why it does not
/// fit.
async fn place(
    conn: &mut PgConnection,
    owner: NeedOwner,
    update: &OwnerUpdate,
) -> Result<Result<Place, &'static str>, sqlx::Error> {
    let (case_named, company_named) =
        match (named_id(&update.case_id), named_id(&update.company_id)) {
            (Ok(case), Ok(company)) => (case, company),
            (Err(reason), _) | (_, Err(reason)) => return Ok(Err(reason)),
        };
    match &update.subject {
        Subject::Need(need_id) => {
            let Some(need) = store::need_place(conn, *need_id).await? else {
                return Ok(Err("unknown need"));
            };
            if need.owner != Some(owner) {
                return Ok(Err("need handed to another owner"));
            }
            if case_named.is_some_and(|case| case != need.case_id) {
                return Ok(Err("need of another case"));
            }
            if company_named.is_some_and(|company| company != need.company_id) {
                return Ok(Err("need of another company"));
            }
            Ok(Ok(Place {
                company_id: need.company_id,
                case: Some((need.case_id, Some(*need_id))),
            }))
        }
        Subject::Company(company_id, category) => {
            if !store::serves_company(conn, *company_id, owner).await? {
                return Ok(Err("company the owner does not serve"));
            }
            if let Some(case_id) = case_named
                && store::company_of_case(conn, case_id).await? != Some(*company_id)
            {
                return Ok(Err("case of another company"));
            }
            Ok(Ok(Place {
                company_id: *company_id,
                case: store::open_case_for(conn, *company_id, *category).await?,
            }))
        }
    }
}

/// An owner's report of what it erased, onto the company's erasure.
async fn record_erasure(
    conn: &mut PgConnection,
    source: &'static str,
    event: &Event,
    report: &onestop_contracts::common::v1::CompanyDataErased,
) -> anyhow::Result<()> {
    let Ok(company_id) = Uuid::parse_str(&report.company_id) else {
        reject(source, event, "names an id that is not one");
        return Ok(());
    };
    let at = event
        .occurred_at
        .as_ref()
        .and_then(from_timestamp)
        .unwrap_or_else(Utc::now);
    if !store::record_erased(conn, company_id, source, &report.erased, at).await? {
        reject(source, event, "erasure intake never requested");
    }
    Ok(())
}

async fn apply_update(
    conn: &mut PgConnection,
    source: &str,
    event: &Event,
    update: &OwnerUpdate,
    place: Place,
) -> anyhow::Result<()> {
    for fact in &update.partners {
        record_partner(conn, place.company_id, fact).await?;
    }
    let Some((case_id, need_id)) = place.case else {
        return Ok(());
    };
    let at: Option<DateTime<Utc>> = event.occurred_at.as_ref().and_then(from_timestamp);
    store::add_timeline_entry(
        conn,
        &NewEntry {
            case_id,
            need_id,
            service: source,
            kind: &event.r#type,
            summary: &update.summary,
            at,
            source_event: Some(&owner_events::fingerprint(event)),
            agency_only: update.agency_only.as_deref(),
        },
    )
    .await?;
    if let (Some(need_id), Some(progress)) = (need_id, update.progress) {
        advance(conn, case_id, need_id, progress, update, &event.r#type).await?;
    }
    if let Some(new_need) = &update.opens {
        open_found_need(conn, case_id, new_need).await?;
    }
    Ok(())
}

async fn record_partner(
    conn: &mut PgConnection,
    company_id: Uuid,
    fact: &PartnerFact,
) -> Result<(), sqlx::Error> {
    match &fact.partner {
        Some(partner) => {
            relationships::record(
                conn,
                &Relationship {
                    company_id,
                    partner: partner.clone(),
                    source: fact.source,
                    reference: fact.reference.clone(),
                    state: fact.state,
                },
            )
            .await?;
        }
        None => {
            relationships::end_by_reference(conn, company_id, fact.source, &fact.reference).await?
        }
    }
    Ok(())
}

/// Moves the need forward only (see [`NeedStatus::advances_to`]), and
/// closes the case when this was its last need to finish.
async fn advance(
    conn: &mut PgConnection,
    case_id: Uuid,
    need_id: Uuid,
    to: NeedStatus,
    update: &OwnerUpdate,
    cause: &str,
) -> anyhow::Result<()> {
    let Some((company_id, need)) = store::lock_case_and_need(conn, case_id, need_id).await? else {
        return Ok(());
    };
    let for_this_need = update
        .progress_for
        .is_none_or(|category| category == need.category);
    if !for_this_need || !need.status.advances_to(to) {
        return Ok(());
    }
    store::set_need_status(conn, need_id, to).await?;
    relationships::append_for_case(
        conn,
        case_id,
        [lifecycle::status_changed(case_id, &need, to, cause)],
    )
    .await?;
    if to.is_finished() {
        lifecycle::close_if_finished(conn, case_id, company_id).await?;
    }
    Ok(())
}

/// Opens the need an owner's finding calls for, once per case and topic.
async fn open_found_need(
    conn: &mut PgConnection,
    case_id: Uuid,
    found: &NewNeed,
) -> anyhow::Result<()> {
    let Some((company_id, status)) = store::lock_case_status(conn, case_id).await? else {
        return Ok(());
    };
    // A closed case stays closed: what the owner found is on its timeline.
    if status == CaseStatus::Closed
        || store::has_open_need_on(conn, case_id, found.category, &found.topic).await?
    {
        return Ok(());
    }
    let Some(company) = store::load_company(conn, company_id, Lock::None).await? else {
        return Ok(());
    };
    let position = store::next_need_position(conn, case_id).await?;
    let owners = store::category_owners(conn).await?;
    let spec = NeedSpec {
        category: found.category,
        detail: found.detail.clone(),
        target_markets: found
            .target_markets
            .iter()
            .filter_map(|c| CountryCode::parse(c).ok())
            .collect(),
        hs_codes: found
            .hs_codes
            .iter()
            .filter_map(|c| HsInterest::parse(c).ok())
            .collect(),
        program_id: String::new(),
    };
    let planned = PlannedNeed {
        owner: owners.owner_of(&spec),
        spec,
        added_by_rule: true,
    };
    let (need_id, opened) =
        needs::open_need(conn, case_id, position, &planned, &snapshot(&company)).await?;
    store::set_need_topic(conn, need_id, &found.topic).await?;
    relationships::append_for_case(conn, case_id, [opened]).await?;
    Ok(())
}
