//! The background sweep: contact.overdue once per missed cadence period,
//! the monthly fee ledger, the end of handover windows, and a waitlist
//! fill as a safety net. Every step claims its rows with SKIP LOCKED or a
//! unique key, so any number of replicas can sweep at once.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use onestop_contracts::event_types::MentoringEvent;
use onestop_contracts::mentoring::v1 as pb;
use onestop_platform::ApiResult;
use onestop_platform::events::{self, NewEvent, Partner};
use onestop_platform::supervise::Supervisor;
use onestop_platform::time::{Clock, to_timestamp};
use sqlx::PgPool;

use crate::continuity::{self, Rules};
use crate::domain::cadence;
use crate::store::{self, Lock};

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    pub overdue_raised: u32,
    pub fees_charged: u32,
    pub handovers_ended: u32,
    pub waitlist_filled: u32,
}

/// One pass over everything time-driven, as of `now`. The steps are
/// independent, each in its own transaction: one that fails is logged and
/// the others still run; the pass then fails with the first error, so the
/// supervisor retries it (every step is safe to run again).
pub async fn sweep_once(
    pool: &PgPool,
    rules: &Rules,
    now: DateTime<Utc>,
) -> ApiResult<SweepReport> {
    let mut first_error = None;
    let mut step = |name: &'static str, outcome: ApiResult<u32>| match outcome {
        Ok(count) => count,
        Err(error) => {
            tracing::error!(step = name, error = %error, "mentoring sweep step failed");
            first_error.get_or_insert(error);
            0
        }
    };
    let report = SweepReport {
        overdue_raised: step("overdue", raise_overdue_contacts(pool, now).await),
        fees_charged: step("fees", accrue_fees(pool, now).await),
        handovers_ended: step("handovers", end_handovers(pool, now).await),
        waitlist_filled: step("waitlist", fill_waitlist(pool, rules, now).await),
    };
    match first_error {
        Some(error) => Err(error),
        None => Ok(report),
    }
}

pub async fn raise_overdue_contacts(pool: &PgPool, now: DateTime<Utc>) -> ApiResult<u32> {
    let mut tx = pool.begin().await?;
    let mut pending = Vec::new();
    let mut raised = 0;
    for due in store::claim_due_contacts(&mut tx, now).await? {
        let periods = cadence::periods_missed(due.since, due.interval_days, now)
            .min(i64::from(i32::MAX)) as i32;
        if periods <= due.periods_raised
            || !store::mark_periods_raised(&mut tx, due.id, due.periods_raised, periods).await?
        {
            continue;
        }
        for period in (due.periods_raised + 1)..=periods {
            pending.push(
                NewEvent::new(
                    MentoringEvent::ContactOverdue,
                    due.id,
                    &pb::ContactOverdue {
                        assignment_id: due.id.to_string(),
                        company_id: due.company_id.to_string(),
                        advisor_id: due.advisor_id.to_string(),
                        due_at: Some(to_timestamp(cadence::due_at(
                            due.since,
                            due.interval_days,
                            i64::from(period),
                        ))),
                        last_contact_at: due.last_contact_at.map(to_timestamp),
                        contact_interval_days: due.interval_days.max(0) as u32,
                        period: period as u32,
                    },
                )
                .for_partners([Partner::advisor(due.advisor_id)]),
            );
            raised += 1;
        }
    }
    events::append_all(&mut tx, pending).await?;
    tx.commit().await?;
    Ok(raised)
}

pub async fn accrue_fees(pool: &PgPool, now: DateTime<Utc>) -> ApiResult<u32> {
    let mut tx = pool.begin().await?;
    let charges = store::accrue_fees(&mut tx, now).await?;
    let charged: Vec<NewEvent> = charges
        .iter()
        .map(|charge| {
            NewEvent::new(
                MentoringEvent::FeeCharged,
                &charge.assignment_id,
                &pb::FeeCharged {
                    charge_id: charge.charge_id.clone(),
                    assignment_id: charge.assignment_id.clone(),
                    company_id: charge.company_id.clone(),
                    advisor_id: charge.advisor_id.clone(),
                    program_id: charge.program_id.clone(),
                    month: charge.month.clone(),
                    amount: charge.amount.clone(),
                },
            )
            .for_partners([Partner::advisor(&charge.advisor_id)])
        })
        .collect();
    events::append_all(&mut tx, charged).await?;
    tx.commit().await?;
    Ok(charges.len() as u32)
}

pub async fn end_handovers(pool: &PgPool, now: DateTime<Utc>) -> ApiResult<u32> {
    let mut tx = pool.begin().await?;
    let mut pending = Vec::new();
    let finished = store::claim_finished_handovers(&mut tx, now).await?;
    for handover in &finished {
        store::end_handover(&mut tx, handover.id, now).await?;
        let (need_id, case_id) = store::load_assignment(&mut tx, handover.successor, Lock::None)
            .await?
            .map(|successor| continuity::first_need(&successor))
            .unwrap_or_default();
        pending.push(continuity::ended_event(pb::AssignmentEnded {
            assignment_id: handover.id.to_string(),
            company_id: handover.company_id.to_string(),
            advisor_id: handover.advisor_id.to_string(),
            reason: handover.reason,
            successor_assignment_id: handover.successor.to_string(),
            need_id,
            case_id,
        }));
    }
    events::append_all(&mut tx, pending).await?;
    tx.commit().await?;
    Ok(finished.len() as u32)
}

pub async fn fill_waitlist(pool: &PgPool, rules: &Rules, now: DateTime<Utc>) -> ApiResult<u32> {
    let mut tx = pool.begin().await?;
    store::lock_waitlist(&mut tx).await?;
    let mut pending = Vec::new();
    let filled = continuity::fill_waitlist(&mut tx, rules, now, &mut pending).await?;
    events::append_all(&mut tx, pending).await?;
    tx.commit().await?;
    Ok(filled)
}

/// Sweeps every `every` until shutdown, as the supervised loop `sweeper`.
pub fn spawn(
    pool: PgPool,
    rules: Rules,
    clock: Arc<dyn Clock>,
    every: Duration,
    supervisor: &Supervisor,
) -> tokio::task::JoinHandle<()> {
    supervisor.every("sweeper", every, move || {
        let (pool, clock) = (pool.clone(), clock.clone());
        onestop_platform::audit::as_service(crate::startup::SERVICE_NAME, async move {
            let report = sweep_once(&pool, &rules, clock.now()).await?;
            if report != SweepReport::default() {
                tracing::info!(
                    overdue_raised = report.overdue_raised,
                    fees_charged = report.fees_charged,
                    handovers_ended = report.handovers_ended,
                    waitlist_filled = report.waitlist_filled,
                    "mentoring sweep"
                );
            }
            Ok(())
        })
    })
}
