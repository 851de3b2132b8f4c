//! Care along the growth ladder, applied: when a company's stage changes,
//! the follow-on needs the rule table prescribes (`domain::ladder`) are
//! opened in the same transaction as the change, on the company's latest
//! open case, or on a case opened for them when it has none. A category
//! the company already has an open need of is skipped: it is being served.
//! Because the change and its needs commit together, a retried request
//! (replayed from its idempotency key) or a re-read of the feed opens
//! nothing twice; a second diagnosis with the same result is no change.

use onestop_contracts::event_types::IntakeEvent;
use onestop_contracts::intake::v1 as pb;
use onestop_domain::{GrowthStage, HsInterest};
use onestop_platform::events::NewEvent;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::case::{NeedSpec, PlannedNeed};
use crate::domain::company::snapshot;
use crate::domain::ladder::follow_ons;
use crate::startup::SERVICE_NAME;
use crate::store::{self, NewEntry};
use crate::{needs, relationships};

/// Opens the follow-on needs of `company`'s move from `from` to its stage
/// now (`company` as the change left it) and returns their events, to be
/// appended after the stage change's own.
pub async fn open_follow_ons(
    conn: &mut PgConnection,
    company: &pb::Company,
    from: GrowthStage,
    to: GrowthStage,
) -> anyhow::Result<Vec<NewEvent>> {
    let company_id = Uuid::parse_str(&company.company_id)?;
    let profile = company.profile.clone().unwrap_or_default();
    let open = store::open_need_categories(conn, company_id).await?;
    let prescribed: Vec<_> = follow_ons(from, to, profile.small_merchant)
        .into_iter()
        .filter(|need| !open.contains(&need.category))
        .collect();
    if prescribed.is_empty() {
        return Ok(Vec::new());
    }
    let owners = store::category_owners(conn).await?;
    let products: Vec<HsInterest> = profile
        .hs_codes
        .iter()
        .filter_map(|code| HsInterest::parse(code).ok())
        .collect();
    let moved = format!("{} -> {}", from.as_str(), to.as_str());
    let mut new_events = Vec::new();
    let (case_id, opened_case) = match store::lock_latest_open_case(conn, company_id).await? {
        Some(case_id) => (case_id, false),
        None => {
            let case_id = Uuid::now_v7();
            store::insert_case(conn, case_id, company_id).await?;
            (case_id, true)
        }
    };
    store::add_timeline_entry(
        conn,
        &NewEntry {
            case_id,
            need_id: None,
            service: SERVICE_NAME,
            kind: if opened_case {
                IntakeEvent::CaseOpened.name()
            } else {
                IntakeEvent::CompanyStageChanged.name()
            },
            summary: &format!(
                "Growth stage {moved}: {} follow-on need(s) opened by the ladder rules",
                prescribed.len()
            ),
            at: None,
            source_event: None,
            agency_only: None,
        },
    )
    .await?;
    let company_snapshot = snapshot(company);
    let first_position = store::next_need_position(conn, case_id).await?;
    let mut need_ids = Vec::new();
    let mut need_events = Vec::new();
    for (offset, follow_on) in prescribed.iter().enumerate() {
        let spec = NeedSpec {
            category: follow_on.category,
            detail: format!("Follow-on for the move {moved}: {}", follow_on.why),
            target_markets: Vec::new(),
            hs_codes: products.clone(),
            program_id: String::new(),
        };
        let planned = PlannedNeed {
            owner: owners.owner_of(&spec),
            spec,
            added_by_rule: true,
        };
        let (need_id, event) = needs::open_need(
            conn,
            case_id,
            first_position + offset,
            &planned,
            &company_snapshot,
        )
        .await?;
        need_ids.push(need_id.to_string());
        need_events.push(event);
    }
    if opened_case {
        new_events.push(NewEvent::new(
            IntakeEvent::CaseOpened,
            case_id,
            &pb::CaseOpened {
                case_id: case_id.to_string(),
                company_id: company_id.to_string(),
                need_ids,
            },
        ));
    }
    new_events.extend(need_events);
    let new_events = relationships::name_case_partners(conn, case_id, new_events).await?;
    tracing::info!(case_id = %case_id, needs = prescribed.len(), moved = %moved, "follow-on needs opened");
    Ok(new_events)
}
