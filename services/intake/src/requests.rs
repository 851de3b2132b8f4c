//! A company's requests and complaints as they move: each change writes
//! its line on the case timeline and its event, in the caller's
//! transaction, naming the agencies concerned and the company's advisors
//! as partners so their scoped feeds carry it. The sweep raises
//! `request.overdue` once per due date for a request left unanswered.
//!
//! Summaries, answers and reasons are people's words: they stay in
//! intake's tables and never reach the feed, the timeline or a log.

use std::time::Duration;

use chrono::{DateTime, Utc};
use onestop_contracts::event_types::IntakeEvent;
use onestop_contracts::intake::v1 as pb;
use onestop_platform::events::{self, NewEvent, Partner};
use onestop_platform::supervise::Supervisor;
use onestop_platform::time::{Clock, to_timestamp};
use sqlx::{PgConnection, PgPool};
use std::sync::Arc;
use uuid::Uuid;

use crate::domain::request::{Channel, RequestKind};
use crate::startup::SERVICE_NAME;
use crate::store::{self, NewEntry, OverdueRequest};

/// How often the sweep looks for requests past their due date: due dates
/// are whole days, so a minute late is on time for everyone reading.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// The partners an event about the company's request names: the agencies
/// concerned and the company's advisors.
async fn partners(
    conn: &mut PgConnection,
    company_id: Uuid,
    agencies: &[&str],
) -> Result<Vec<Partner>, sqlx::Error> {
    let mut named: Vec<Partner> = Vec::new();
    for agency in agencies {
        let partner = Partner::agency(agency);
        if !named.contains(&partner) {
            named.push(partner);
        }
    }
    for advisor in store::advisors_of(conn, company_id).await? {
        named.push(Partner::advisor(advisor));
    }
    Ok(named)
}

async fn line(
    conn: &mut PgConnection,
    case_id: Uuid,
    kind: IntakeEvent,
    summary: &str,
) -> Result<(), sqlx::Error> {
    store::add_timeline_entry(
        conn,
        &NewEntry {
            case_id,
            need_id: None,
            service: SERVICE_NAME,
            kind: kind.name(),
            summary,
            at: None,
            source_event: None,
            agency_only: None,
        },
    )
    .await?;
    Ok(())
}

fn day(at: Option<&prost_types::Timestamp>) -> String {
    at.and_then(onestop_platform::time::from_timestamp)
        .map(|at| at.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

fn ids(request: &pb::CaseRequest) -> (Uuid, Uuid) {
    (
        Uuid::parse_str(&request.case_id).unwrap_or_default(),
        Uuid::parse_str(&request.company_id).unwrap_or_default(),
    )
}

/// `request.raised` for the request just recorded, with its timeline line.
pub async fn raised(
    conn: &mut PgConnection,
    request: &pb::CaseRequest,
    kind: RequestKind,
    channel: Channel,
    recorder: Option<Partner>,
) -> Result<(), sqlx::Error> {
    let (case_id, company_id) = ids(request);
    let event = IntakeEvent::RequestRaised;
    line(
        conn,
        case_id,
        event,
        &format!(
            "{} raised {} for {} to answer by {}",
            kind.words(),
            channel.words(),
            request.answering_agency_id,
            day(request.due_at.as_ref())
        ),
    )
    .await?;
    let mut named = partners(conn, company_id, &[&request.answering_agency_id]).await?;
    if let Some(recorder) = recorder.filter(|r| !named.contains(r)) {
        named.push(recorder);
    }
    events::append(
        conn,
        NewEvent::new(
            event,
            &request.request_id,
            &pb::CaseRequestRaised {
                request_id: request.request_id.clone(),
                case_id: request.case_id.clone(),
                company_id: request.company_id.clone(),
                kind: request.kind,
                raised_by: request.raised_by,
                channel: request.channel,
                answering_agency_id: request.answering_agency_id.clone(),
                due_at: request.due_at,
            },
        )
        .for_partners(named),
    )
    .await?;
    Ok(())
}

/// `request.escalated`, from `from_agency_id` to where the request now is.
pub async fn escalated(
    conn: &mut PgConnection,
    request: &pb::CaseRequest,
    from_agency_id: &str,
) -> Result<(), sqlx::Error> {
    let (case_id, company_id) = ids(request);
    let event = IntakeEvent::RequestEscalated;
    let to = &request.answering_agency_id;
    let whom = if to == from_agency_id {
        format!("a higher level of {to}")
    } else {
        format!("{to} (from {from_agency_id})")
    };
    line(
        conn,
        case_id,
        event,
        &format!(
            "Request escalated to {whom}, level {}, to answer by {}",
            request.escalation_level,
            day(request.due_at.as_ref())
        ),
    )
    .await?;
    let named = partners(conn, company_id, &[from_agency_id, to]).await?;
    events::append(
        conn,
        NewEvent::new(
            event,
            &request.request_id,
            &pb::CaseRequestEscalated {
                request_id: request.request_id.clone(),
                case_id: request.case_id.clone(),
                company_id: request.company_id.clone(),
                from_agency_id: from_agency_id.to_owned(),
                to_agency_id: to.clone(),
                escalation_level: request.escalation_level,
                due_at: request.due_at,
            },
        )
        .for_partners(named),
    )
    .await?;
    Ok(())
}

/// `request.answered`; `late` when past its due date.
pub async fn answered(
    conn: &mut PgConnection,
    request: &pb::CaseRequest,
    late: bool,
) -> Result<(), sqlx::Error> {
    let (case_id, company_id) = ids(request);
    let event = IntakeEvent::RequestAnswered;
    line(
        conn,
        case_id,
        event,
        &format!(
            "Request answered by {}{}",
            request.answering_agency_id,
            if late { ", after its due date" } else { "" }
        ),
    )
    .await?;
    let named = partners(conn, company_id, &[&request.answering_agency_id]).await?;
    events::append(
        conn,
        NewEvent::new(
            event,
            &request.request_id,
            &pb::CaseRequestAnswered {
                request_id: request.request_id.clone(),
                case_id: request.case_id.clone(),
                company_id: request.company_id.clone(),
                answering_agency_id: request.answering_agency_id.clone(),
                escalation_level: request.escalation_level,
                late,
                answered_at: request.answered_at,
            },
        )
        .for_partners(named),
    )
    .await?;
    Ok(())
}

async fn overdue(conn: &mut PgConnection, request: &OverdueRequest) -> Result<(), sqlx::Error> {
    let event = IntakeEvent::RequestOverdue;
    line(
        conn,
        request.case_id,
        event,
        &format!(
            "{} overdue: {} has not answered by {}",
            request.kind.words(),
            request.answering_agency_id,
            request.due_at.format("%Y-%m-%d")
        ),
    )
    .await?;
    let named = partners(conn, request.company_id, &[&request.answering_agency_id]).await?;
    events::append(
        conn,
        NewEvent::new(
            event,
            request.request_id,
            &pb::CaseRequestOverdue {
                request_id: request.request_id.to_string(),
                case_id: request.case_id.to_string(),
                company_id: request.company_id.to_string(),
                answering_agency_id: request.answering_agency_id.clone(),
                kind: request.kind.to_proto() as i32,
                escalation_level: request.escalation_level,
                due_at: Some(to_timestamp(request.due_at)),
            },
        )
        .for_partners(named),
    )
    .await?;
    Ok(())
}

/// Raises `request.overdue` for every unanswered request due by `now`
/// whose event was not raised for its due date yet, in one transaction
/// with the marks that keep it from being raised again; returns how many.
pub async fn raise_overdue(pool: &PgPool, now: DateTime<Utc>) -> anyhow::Result<u32> {
    let mut tx = pool.begin().await?;
    let due = store::claim_overdue(&mut tx, now).await?;
    for request in &due {
        overdue(&mut tx, request).await?;
    }
    tx.commit().await?;
    if !due.is_empty() {
        tracing::info!(raised = due.len(), "overdue requests raised");
    }
    Ok(due.len() as u32)
}

/// Sweeps every [`SWEEP_INTERVAL`] until shutdown, as the supervised loop
/// `request-sweeper`.
pub fn spawn(pool: PgPool, clock: Arc<dyn Clock>, supervisor: &Supervisor) {
    supervisor.every("request-sweeper", SWEEP_INTERVAL, move || {
        let (pool, clock) = (pool.clone(), clock.clone());
        onestop_platform::audit::as_service(SERVICE_NAME, async move {
            raise_overdue(&pool, clock.now()).await?;
            Ok(())
        })
    });
}
