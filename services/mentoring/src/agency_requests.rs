//! The advisor follows up a company's request an agency left unanswered:
//! intake's request.overdue puts it on the advisor's overdue list while the
//! company has an ACTIVE assignment, and request.answered (or
//! request.escalated, which sets a new due date) takes it off.

use futures_util::future::BoxFuture;
use onestop_contracts::event_types::IntakeEvent;
use onestop_contracts::events::v1::Event;
use onestop_contracts::intake::v1 as intake;
use onestop_platform::company_feed::RequestFollower;
use onestop_platform::time::from_timestamp;
use prost::Message;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::store::{self, ReportedOverdue};

pub struct OverdueRequests;

const FOLLOWED: &[IntakeEvent] = &[
    IntakeEvent::RequestOverdue,
    IntakeEvent::RequestEscalated,
    IntakeEvent::RequestAnswered,
];

fn kind_name(kind: i32) -> &'static str {
    match intake::CaseRequestKind::try_from(kind) {
        Ok(intake::CaseRequestKind::Complaint) => "COMPLAINT",
        _ => "REQUEST",
    }
}

impl RequestFollower for OverdueRequests {
    fn followed(&self) -> &'static [IntakeEvent] {
        FOLLOWED
    }

    fn request_moved<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        kind: IntakeEvent,
        event: &'a Event,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let payload = event.payload.clone().unwrap_or_default();
            match kind {
                IntakeEvent::RequestOverdue => {
                    let overdue = intake::CaseRequestOverdue::decode(payload.value.as_slice())?;
                    let (Ok(request_id), Ok(case_id), Ok(company_id), Some(due_at)) = (
                        Uuid::parse_str(&overdue.request_id),
                        Uuid::parse_str(&overdue.case_id),
                        Uuid::parse_str(&overdue.company_id),
                        overdue.due_at.as_ref().and_then(from_timestamp),
                    ) else {
                        return Ok(());
                    };
                    let kept = store::keep_overdue_request(
                        conn,
                        &ReportedOverdue {
                            request_id,
                            case_id,
                            company_id,
                            answering_agency_id: &overdue.answering_agency_id,
                            kind: kind_name(overdue.kind),
                            escalation_level: overdue.escalation_level.min(i32::MAX as u32) as i32,
                            due_at,
                        },
                    )
                    .await?;
                    if kept {
                        tracing::info!(request_id = %request_id, company_id = %company_id, "overdue request on the advisor's list");
                    }
                }
                IntakeEvent::RequestAnswered => {
                    let answered = intake::CaseRequestAnswered::decode(payload.value.as_slice())?;
                    if let Ok(request_id) = Uuid::parse_str(&answered.request_id) {
                        store::forget_overdue_request(conn, request_id).await?;
                    }
                }
                IntakeEvent::RequestEscalated => {
                    let escalated = intake::CaseRequestEscalated::decode(payload.value.as_slice())?;
                    if let Ok(request_id) = Uuid::parse_str(&escalated.request_id) {
                        store::forget_overdue_request(conn, request_id).await?;
                    }
                }
                _ => {}
            }
            Ok(())
        })
    }
}
