//! The transactional moves that keep a company with one advisor: assigning
//! the best free advisor, queueing when nobody is free, filling the queue
//! when capacity frees, and replacing an advisor with history kept.
//!
//! Lock order, to stay free of deadlocks: the waitlist lock first (only
//! transactions that free capacity take it up front), then company rows,
//! then assignment rows, then advisor rows. Events are collected in an
//! [`Outbox`] and appended last, because the event-log lock is held from the
//! first append until commit.

use chrono::{DateTime, Months, Utc};
use onestop_contracts::mentoring::v1 as pb;
use onestop_platform::events::{self, NewEvent};
use onestop_platform::time::to_timestamp;
use onestop_platform::{ApiError, ApiResult};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::cadence::Cadence;
use crate::domain::matching::{self, Weights};
use crate::store::{self, CompanyRecord, NewAssignment, NewChange};

/// Advisory lock key serialising waitlist inserts with waitlist fills, so
/// a request never queues behind capacity that freed while it looked.
const WAITLIST_LOCK: i64 = 0x6d65_6e74_5f77_6169;

/// The commitment every assignment makes.
const COMMITMENT_MONTHS: u32 = 36;

/// Rules the service was configured with.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    pub weights: Weights,
    pub cadence: Cadence,
    pub handover_days: u32,
}

/// Events of one transaction, appended together just before commit.
#[derive(Default)]
pub struct Outbox(Vec<NewEvent>);

impl Outbox {
    pub fn push(&mut self, event: NewEvent) {
        self.0.push(event);
    }

    pub async fn append(self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        events::append_all(conn, self.0).await
    }
}

pub async fn lock_waitlist(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(WAITLIST_LOCK)
        .execute(conn)
        .await?;
    Ok(())
}

pub fn committed_until(started_at: DateTime<Utc>) -> DateTime<Utc> {
    started_at
        .checked_add_months(Months::new(COMMITMENT_MONTHS))
        .unwrap_or(started_at)
}

/// The company's first need, which names the case on intake's timeline.
pub fn first_need(assignment: &pb::Assignment) -> (String, String) {
    assignment
        .needs
        .first()
        .map(|need| (need.need_id.clone(), need.case_id.clone()))
        .unwrap_or_default()
}

fn parse_stored(id: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(id).map_err(|error| ApiError::Internal(anyhow::anyhow!("stored id: {error}")))
}

/// Whom to assign and why.
pub struct Placement<'a> {
    pub company: &'a CompanyRecord,
    /// Never this advisor (the one being replaced).
    pub exclude: Option<Uuid>,
    /// Only this advisor (an admin's explicit choice).
    pub only: Option<Uuid>,
    pub predecessor: Option<Uuid>,
    pub from_waitlist: bool,
    /// True only with the waitlist lock held: wait for advisors another
    /// transaction is claiming instead of skipping them.
    pub patient: bool,
}

/// Assigns the best-scoring advisor with a free slot and records
/// `assignment.created`; None when nobody has capacity. A candidate that
/// filled up since it was read is skipped for the next best.
pub async fn assign_best(
    conn: &mut PgConnection,
    rules: &Rules,
    placement: Placement<'_>,
    now: DateTime<Utc>,
    outbox: &mut Outbox,
) -> ApiResult<Option<pb::Assignment>> {
    let mut candidates = store::free_candidates(conn, placement.exclude).await?;
    if let Some(only) = placement.only {
        candidates.retain(|candidate| candidate.advisor_id == only);
    }
    let ranked = matching::rank(&rules.weights, &placement.company.features, &candidates);
    for (advisor_id, score) in ranked {
        if !store::claim_slot(conn, advisor_id, placement.patient).await? {
            continue;
        }
        let (program_id, monthly_fee) = store::advisor_program(conn, advisor_id).await?;
        let id = Uuid::now_v7();
        let new = NewAssignment {
            id,
            company_id: placement.company.id,
            advisor_id,
            stage: placement.company.stage,
            score: &score,
            started_at: now,
            committed_until: committed_until(now),
            predecessor: placement.predecessor,
            contact_interval_days: rules.cadence.interval_days(placement.company.stage),
            program_id: program_id.clone(),
            monthly_fee,
            from_waitlist: placement.from_waitlist,
        };
        store::insert_assignment(conn, &new).await?;
        store::attach_company_needs(conn, id, placement.company.id).await?;
        let assignment = store::load_assignment(conn, id, false)
            .await?
            .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("assignment vanished")))?;
        let (need_id, case_id) = first_need(&assignment);
        outbox.push(NewEvent::new(
            "assignment.created",
            "assignment",
            id,
            &pb::AssignmentCreated {
                assignment_id: id.to_string(),
                company_id: placement.company.id.to_string(),
                advisor_id: advisor_id.to_string(),
                need_id,
                case_id,
                score: score.total,
                committed_until: assignment.committed_until,
                predecessor_assignment_id: placement
                    .predecessor
                    .map(|p| p.to_string())
                    .unwrap_or_default(),
                from_waitlist: placement.from_waitlist,
            },
        ));
        return Ok(Some(assignment));
    }
    Ok(None)
}

/// Queues the company; call with the waitlist lock held.
pub async fn enqueue(
    conn: &mut PgConnection,
    company_id: Uuid,
    need: Option<(Uuid, Uuid)>,
    outgoing: Option<&pb::Assignment>,
    now: DateTime<Utc>,
    outbox: &mut Outbox,
) -> ApiResult<pb::WaitlistEntry> {
    let id = Uuid::now_v7();
    let outgoing_id = outgoing
        .map(|a| parse_stored(&a.assignment_id))
        .transpose()?;
    store::insert_waitlist_entry(conn, id, need, company_id, outgoing_id, now).await?;
    let entry = store::load_waitlist_entry(conn, id)
        .await?
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("waitlist entry vanished")))?;
    // A company waiting for a handover successor is still on its first
    // need's case.
    let (need_id, case_id) = match outgoing {
        Some(previous) if entry.need_id.is_empty() => first_need(previous),
        _ => (entry.need_id.clone(), entry.case_id.clone()),
    };
    outbox.push(NewEvent::new(
        "assignment.waitlisted",
        "company",
        company_id,
        &pb::AssignmentWaitlisted {
            waitlist_entry_id: entry.waitlist_entry_id.clone(),
            need_id,
            case_id,
            company_id: company_id.to_string(),
            position: entry.position,
            outgoing_assignment_id: entry.outgoing_assignment_id.clone(),
        },
    ));
    Ok(entry)
}

/// Fills waiting entries in order while advisors have free slots. Call
/// with the waitlist lock held, after the capacity-freeing change.
pub async fn fill_waitlist(
    conn: &mut PgConnection,
    rules: &Rules,
    now: DateTime<Utc>,
    outbox: &mut Outbox,
) -> ApiResult<u32> {
    let mut filled = 0;
    for waiting in store::claim_waiting(conn).await? {
        let Some(company) = store::lock_company(conn, waiting.company_id).await? else {
            continue;
        };
        // Never a second ACTIVE assignment: an entry whose company got an
        // advisor some other way is settled by that one.
        if let Some(active) = store::active_assignment_of(conn, company.id).await? {
            store::mark_filled(conn, waiting.id, parse_stored(&active.assignment_id)?, now).await?;
            continue;
        }
        let outgoing = match waiting.outgoing {
            Some(id) => store::load_assignment(conn, id, true).await?,
            None => None,
        };
        let exclude = outgoing
            .as_ref()
            .map(|a| parse_stored(&a.advisor_id))
            .transpose()?;
        let placement = Placement {
            company: &company,
            exclude,
            only: None,
            predecessor: waiting.outgoing,
            from_waitlist: true,
            patient: true,
        };
        let Some(assignment) = assign_best(conn, rules, placement, now, outbox).await? else {
            // Every entry can take any free advisor, so one that finds
            // none means the pool is full.
            break;
        };
        let assignment_id = parse_stored(&assignment.assignment_id)?;
        store::mark_filled(conn, waiting.id, assignment_id, now).await?;
        if let Some(previous) = outgoing {
            let previous_id = parse_stored(&previous.assignment_id)?;
            let successor_advisor = parse_stored(&assignment.advisor_id)?;
            store::set_successor(conn, previous_id, assignment_id).await?;
            store::complete_change(conn, previous_id, assignment_id, successor_advisor).await?;
            let (need_id, case_id) = first_need(&assignment);
            outbox.push(NewEvent::new(
                "assignment.reassigned",
                "company",
                waiting.company_id,
                &pb::AssignmentReassigned {
                    company_id: waiting.company_id.to_string(),
                    from_assignment_id: previous.assignment_id.clone(),
                    to_assignment_id: assignment.assignment_id.clone(),
                    from_advisor_id: previous.advisor_id.clone(),
                    to_advisor_id: assignment.advisor_id.clone(),
                    reason: previous.end_reason,
                    need_id,
                    case_id,
                },
            ));
        }
        filled += 1;
    }
    Ok(filled)
}

/// How an outgoing assignment leaves.
pub struct Retirement<'a> {
    pub assignment: &'a pb::Assignment,
    pub reason: &'static str,
    pub reason_proto: pb::ReassignReason,
    pub note: String,
    /// None ends it at once; otherwise both advisors are listed until then.
    pub handover_until: Option<DateTime<Utc>>,
}

/// Takes the assignment out of ACTIVE, frees its advisor's slot and records
/// the change (its successor is filled in by [`record_successor`]).
pub async fn retire(
    conn: &mut PgConnection,
    retirement: &Retirement<'_>,
    now: DateTime<Utc>,
) -> ApiResult<()> {
    let id = parse_stored(&retirement.assignment.assignment_id)?;
    let advisor_id = parse_stored(&retirement.assignment.advisor_id)?;
    let company_id = parse_stored(&retirement.assignment.company_id)?;
    if !store::retire_assignment(
        conn,
        id,
        retirement.reason,
        &retirement.note,
        now,
        retirement.handover_until,
    )
    .await?
    {
        return Err(ApiError::failed_precondition(
            "ASSIGNMENT_NOT_ACTIVE",
            format!("assignment {id} is no longer active"),
        ));
    }
    store::release_slot(conn, advisor_id).await?;
    store::insert_change(
        conn,
        &NewChange {
            company_id,
            from_assignment_id: id,
            to_assignment_id: None,
            from_advisor_id: advisor_id,
            to_advisor_id: None,
            reason: retirement.reason,
            note: retirement.note.clone(),
            changed_at: now,
            handover_until: retirement.handover_until,
        },
    )
    .await?;
    Ok(())
}

/// Links the successor and records the events of the change.
pub async fn record_successor(
    conn: &mut PgConnection,
    retirement: &Retirement<'_>,
    successor: &pb::Assignment,
    outbox: &mut Outbox,
) -> ApiResult<()> {
    let previous = retirement.assignment;
    let previous_id = parse_stored(&previous.assignment_id)?;
    let successor_id = parse_stored(&successor.assignment_id)?;
    store::set_successor(conn, previous_id, successor_id).await?;
    store::complete_change(
        conn,
        previous_id,
        successor_id,
        parse_stored(&successor.advisor_id)?,
    )
    .await?;
    let (need_id, case_id) = first_need(successor);
    outbox.push(NewEvent::new(
        "assignment.reassigned",
        "company",
        &previous.company_id,
        &pb::AssignmentReassigned {
            company_id: previous.company_id.clone(),
            from_assignment_id: previous.assignment_id.clone(),
            to_assignment_id: successor.assignment_id.clone(),
            from_advisor_id: previous.advisor_id.clone(),
            to_advisor_id: successor.advisor_id.clone(),
            reason: retirement.reason_proto as i32,
            need_id,
            case_id,
        },
    ));
    Ok(())
}

/// `assignment.handover_started` or `assignment.ended` for the outgoing
/// assignment, whichever way it left.
pub fn departure_event(
    retirement: &Retirement<'_>,
    successor: Option<&pb::Assignment>,
) -> NewEvent {
    let previous = retirement.assignment;
    let (need_id, case_id) = first_need(previous);
    let successor_id = successor
        .map(|s| s.assignment_id.clone())
        .unwrap_or_default();
    match retirement.handover_until {
        Some(until) => NewEvent::new(
            "assignment.handover_started",
            "assignment",
            &previous.assignment_id,
            &pb::AssignmentHandoverStarted {
                company_id: previous.company_id.clone(),
                outgoing_assignment_id: previous.assignment_id.clone(),
                outgoing_advisor_id: previous.advisor_id.clone(),
                successor_assignment_id: successor_id,
                successor_advisor_id: successor.map(|s| s.advisor_id.clone()).unwrap_or_default(),
                handover_until: Some(to_timestamp(until)),
                need_id,
                case_id,
            },
        ),
        None => ended_event(
            &previous.assignment_id,
            &previous.company_id,
            &previous.advisor_id,
            retirement.reason_proto as i32,
            successor_id,
            (need_id, case_id),
        ),
    }
}

pub fn ended_event(
    assignment_id: &str,
    company_id: &str,
    advisor_id: &str,
    reason: i32,
    successor_assignment_id: String,
    (need_id, case_id): (String, String),
) -> NewEvent {
    NewEvent::new(
        "assignment.ended",
        "assignment",
        assignment_id,
        &pb::AssignmentEnded {
            assignment_id: assignment_id.to_owned(),
            company_id: company_id.to_owned(),
            advisor_id: advisor_id.to_owned(),
            reason,
            successor_assignment_id,
            need_id,
            case_id,
        },
    )
}
