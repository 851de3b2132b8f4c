//! Recording a need on a case: the row, its timeline entry and the
//! `need.opened` event that the relay later delivers to the need's owner.
//! Shared by OpenCase and by needs that owners' events open on their own
//! (a certification gap found in a sample test).

use chrono::{DateTime, Utc};
use onestop_contracts::common::v1::{CompanySnapshot, NeedHandOff};
use onestop_contracts::event_types::IntakeEvent;
use onestop_contracts::intake::v1 as pb;
use onestop_domain::NeedCategory;
use onestop_platform::events::NewEvent;
use onestop_platform::time::to_timestamp;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::case::PlannedNeed;
use crate::handoff::owner_name;
use crate::startup::SERVICE_NAME;
use crate::store::{self, NewEntry};

/// Stores `need` at `position` on the case and returns its id and the
/// `need.opened` event to append once the rest of the change is written.
pub async fn open_need(
    conn: &mut PgConnection,
    case_id: Uuid,
    position: usize,
    need: &PlannedNeed,
    company: &CompanySnapshot,
) -> Result<(Uuid, NewEvent), sqlx::Error> {
    let need_id = Uuid::now_v7();
    let opened_at = store::insert_need(conn, need_id, case_id, position, need).await?;
    let opened = IntakeEvent::NeedOpened;
    store::add_timeline_entry(
        conn,
        &NewEntry {
            case_id,
            need_id: Some(need_id),
            service: SERVICE_NAME,
            kind: opened.name(),
            summary: &summary(need),
            at: None,
            source_event: None,
            agency_only: None,
        },
    )
    .await?;
    Ok((
        need_id,
        opened_event(case_id, need_id, need, company, opened_at),
    ))
}

/// The `need.opened` event of a need stored at `opened_at`.
pub fn opened_event(
    case_id: Uuid,
    need_id: Uuid,
    need: &PlannedNeed,
    company: &CompanySnapshot,
    opened_at: DateTime<Utc>,
) -> NewEvent {
    NewEvent::new(
        IntakeEvent::NeedOpened,
        case_id,
        &pb::NeedOpened {
            hand_off: Some(NeedHandOff {
                need_id: need_id.to_string(),
                case_id: case_id.to_string(),
                category: need.spec.category.to_proto() as i32,
                owner: need.owner.to_proto() as i32,
                // Free text stays in intake's tables: the relay reads it
                // from there for the owner, and the feed never carries it.
                detail: String::new(),
                target_markets: need
                    .spec
                    .target_markets
                    .iter()
                    .map(|c| c.as_str().to_owned())
                    .collect(),
                hs_codes: need
                    .spec
                    .hs_codes
                    .iter()
                    .map(|c| c.as_str().to_owned())
                    .collect(),
                company: Some(company.clone()),
                opened_at: Some(to_timestamp(opened_at)),
                program_id: need.spec.program_id.clone(),
            }),
            added_by_rule: need.added_by_rule,
        },
    )
}

/// The need's line on the case timeline.
pub fn summary(need: &PlannedNeed) -> String {
    let why = if need.added_by_rule {
        " (added by rule)"
    } else {
        ""
    };
    let category = if need.spec.category == NeedCategory::Mentoring {
        "MENTORING"
    } else {
        need.spec.category.as_str()
    };
    format!(
        "Need {category} opened{why}; handled by {}",
        owner_name(need.owner)
    )
}
