//! Routing a referral to a program: at creation, and again after a decline
//! or a missed response SLA. Shared by the API and the SLA sweeper, inside
//! the caller's transaction.

use chrono::{DateTime, Utc};
use onestop_contracts::event_types::ReferralEvent;
use onestop_contracts::events::v1::Event;
use onestop_contracts::referral::v1::{self as pb, LegStatus, ProgramEvaluation, ReferralStatus};
use onestop_domain::NeedCategory;
use onestop_platform::events::{NewEvent, Partner};
use onestop_platform::time::to_timestamp;
use onestop_platform::{ApiError, ApiResult, Violations};
use prost_types::Any;
use sqlx::PgConnection;

use crate::domain::directory::sla_duration;
use crate::domain::eligibility::{self, Company};
use crate::domain::referral::without_free_text;
use crate::store;

/// A referral.* event; the payload is the referral as it stands now, less
/// its free text (detail, notes, cancel reason): people write names and
/// phone numbers there, and the feed must carry no personal data. It
/// belongs to every agency that holds or held a leg of the referral: each
/// sees it on its partner feed, trimmed by [`trim_for_agency`].
pub fn referral_event(event_type: ReferralEvent, referral: &pb::Referral) -> NewEvent {
    let payload = without_free_text(referral.clone());
    let agencies: Vec<Partner> = payload
        .legs
        .iter()
        .map(|leg| Partner::agency(&leg.agency_id))
        .collect();
    NewEvent::new(event_type, &payload.referral_id, &payload).for_partners(agencies)
}

/// What an agency reads of a referral event on its partner feed: as
/// `GetReferral` shows it to an agency token, only its own legs (another
/// agency's decline or outcome is not its business).
pub fn trim_for_agency(event: &mut Event, partner: &Partner) {
    let Some(payload) = event.payload.as_mut() else {
        return;
    };
    // Other payloads (a program's capacity) carry nothing to trim; a
    // payload of another type fails to decode as a referral.
    let Ok(mut referral) = payload.to_msg::<pb::Referral>() else {
        return;
    };
    referral.legs.retain(|leg| leg.agency_id == partner.tenant);
    if let Ok(trimmed) = Any::from_msg(&referral) {
        *payload = trimmed;
    }
}

/// A program's capacity change belongs to the agency that runs it.
pub fn capacity_event(program: &pb::Program, cause: &str) -> NewEvent {
    let capacity = program.capacity.unwrap_or_default();
    NewEvent::new(
        ReferralEvent::ProgramCapacityChanged,
        &program.program_id,
        &pb::ProgramCapacityChanged {
            program_id: program.program_id.clone(),
            agency_id: program.agency_id.clone(),
            total_slots: capacity.total_slots,
            slots_in_use: capacity.slots_in_use,
            open_slots: capacity.open_slots,
            availability: capacity.availability,
            cause: cause.to_owned(),
        },
    )
    .for_partners([Partner::agency(&program.agency_id)])
}

/// Every active program serving the category, evaluated for the company:
/// eligible ones ranked, then the rest.
pub async fn evaluate_all(
    conn: &mut PgConnection,
    category: NeedCategory,
    company: &Company,
) -> ApiResult<(Vec<ProgramEvaluation>, Vec<ProgramEvaluation>)> {
    let programs = store::active_programs_for(conn, category.as_str()).await?;
    Ok(eligibility::recommend(&programs, company))
}

/// The company of a stored referral, validated when it arrived.
fn stored_company(referral: &pb::Referral) -> ApiResult<Company> {
    let mut violations = Violations::default();
    Company::parse(referral.company.as_ref(), "company", &mut violations)
        .filter(|_| violations.is_empty())
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("stored company snapshot is invalid")))
}

fn stored_category(referral: &pb::Referral) -> ApiResult<NeedCategory> {
    NeedCategory::from_proto(referral.category)
        .map_err(|_| ApiError::Internal(anyhow::anyhow!("stored category is invalid")))
}

/// Appends a leg for `evaluation`'s program and sets the referral SENT.
pub fn send_to(
    referral: &mut pb::Referral,
    evaluation: ProgramEvaluation,
    preferred: bool,
    now: DateTime<Utc>,
) {
    let program = evaluation.program.clone().unwrap_or_default();
    let sla = program
        .response_sla
        .as_ref()
        .and_then(sla_duration)
        .and_then(|sla| chrono::Duration::from_std(sla).ok())
        .unwrap_or_else(|| chrono::Duration::days(3));
    referral.legs.push(pb::ReferralLeg {
        leg_number: referral.legs.len() as u32 + 1,
        program_id: program.program_id.clone(),
        agency_id: program.agency_id.clone(),
        unit_id: program.unit_id.clone(),
        status: LegStatus::Sent as i32,
        routing: Some(evaluation),
        preferred,
        sent_at: Some(to_timestamp(now)),
        sla_due_at: Some(to_timestamp(now + sla)),
        ..Default::default()
    });
    referral.status = ReferralStatus::Sent as i32;
    referral.updated_at = Some(to_timestamp(now));
}

/// After the current leg ended in a decline or an SLA breach: sends the
/// referral to the next eligible program not yet tried, or marks it
/// EXHAUSTED. Returns the events to append.
pub async fn reroute(
    conn: &mut PgConnection,
    referral: &mut pb::Referral,
    now: DateTime<Utc>,
) -> ApiResult<Vec<NewEvent>> {
    let company = stored_company(referral)?;
    let (eligible, _) = evaluate_all(conn, stored_category(referral)?, &company).await?;
    let tried: Vec<String> = referral.legs.iter().map(|l| l.program_id.clone()).collect();
    let next = eligibility::routing_order(&eligible, &tried, "")
        .into_iter()
        .next();
    referral.updated_at = Some(to_timestamp(now));
    match next {
        Some(evaluation) => {
            send_to(referral, evaluation, false, now);
            Ok(vec![
                referral_event(ReferralEvent::Rerouted, referral),
                referral_event(ReferralEvent::Routed, referral),
            ])
        }
        None => {
            referral.status = ReferralStatus::Exhausted as i32;
            Ok(vec![referral_event(ReferralEvent::Exhausted, referral)])
        }
    }
}
