//! Directory writes, shared by the admin RPCs and the seed command: an
//! unchanged entry is left alone (no new timestamp, no event), so loading
//! the same directory twice changes nothing.

use onestop_contracts::event_types::ReferralEvent;
use onestop_contracts::referral::v1 as pb;
use onestop_platform::events::{self, NewEvent};
use onestop_platform::{ApiError, ApiResult};
use sqlx::PgConnection;

use crate::routing::capacity_event;
use crate::store;

/// Stores a validated agency; returns it as stored and whether it changed.
pub async fn save_agency(
    conn: &mut PgConnection,
    agency: &pb::Agency,
) -> ApiResult<(pb::Agency, bool)> {
    let changed = store::upsert_agency(conn, agency).await?;
    if changed {
        events::append(
            conn,
            NewEvent::new(ReferralEvent::AgencyUpserted, &agency.agency_id, agency),
        )
        .await?;
    }
    let stored = store::load_agency(conn, &agency.agency_id)
        .await?
        .ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!("agency vanished in its own transaction"))
        })?;
    Ok((stored, changed))
}

/// Stores a validated program after checking its agency and unit exist;
/// a change to its capacity raises program.capacity_changed.
pub async fn save_program(
    conn: &mut PgConnection,
    program: &pb::Program,
) -> ApiResult<(pb::Program, bool)> {
    let Some(agency) = store::load_agency(conn, &program.agency_id).await? else {
        return Err(ApiError::invalid(
            "program.agency_id",
            "no such agency in the directory",
        ));
    };
    if !program.unit_id.is_empty() && !agency.units.iter().any(|u| u.unit_id == program.unit_id) {
        return Err(ApiError::invalid(
            "program.unit_id",
            "no such unit in the program's agency",
        ));
    }
    let before = store::load_program(conn, &program.program_id).await?;
    let changed = match store::upsert_program(conn, program).await? {
        Some(stored) => {
            let capacity =
                |p: &pb::Program| p.capacity.as_ref().map(|c| (c.total_slots, c.availability));
            let mut pending = vec![NewEvent::new(
                ReferralEvent::ProgramUpserted,
                &stored.program_id,
                &stored,
            )];
            if before.as_ref().and_then(capacity) != capacity(&stored) {
                pending.push(capacity_event(&stored, "upsert"));
            }
            events::append_all(conn, pending).await?;
            true
        }
        None => false,
    };
    let stored = store::load_program(conn, &program.program_id)
        .await?
        .ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!("program vanished in its own transaction"))
        })?;
    Ok((stored, changed))
}
