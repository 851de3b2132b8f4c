//! The transactional moves that keep a company with one advisor: placing a
//! hand-off (join the current assignment, assign the best free advisor, or
//! queue), filling the queue when capacity frees, and replacing an advisor
//! with history kept, one company at a time or all of a leaving advisor's.
//!
//! Lock order, to stay free of deadlocks: the waitlist lock first (only
//! transactions that free capacity take it up front), then company rows,
//! then assignment rows, then advisor rows. Events are collected and
//! appended last, all in one statement, just before commit.

use chrono::{DateTime, Duration, Months, Utc};
use onestop_contracts::event_types::MentoringEvent;
use onestop_contracts::mentoring::v1 as pb;
use onestop_platform::events::{NewEvent, Partner};
use onestop_platform::time::to_timestamp;
use onestop_platform::{ApiError, ApiResult};
use pb::request_advisor_response::Outcome;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::advisor::HandoverWindow;
use crate::domain::cadence::Cadence;
use crate::domain::change::ChangeReason;
use crate::domain::matching::{self, Weights};
use crate::domain::request::AdvisorRequest;
use crate::store::{self, CompanyRecord, Lock, NewAssignment, NewChange, OnClaimed};

/// The commitment every assignment makes.
const COMMITMENT_MONTHS: u32 = 36;

/// Rules the service was configured with.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    pub weights: Weights,
    pub cadence: Cadence,
    pub handover_days: u32,
}

impl Rules {
    /// The handover window's length in days.
    pub fn window_days(&self, window: HandoverWindow) -> u32 {
        match window {
            HandoverWindow::Default => self.handover_days.max(1),
            HandoverWindow::Days(days) => days,
        }
    }
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

/// An id read back from the database.
pub fn stored_id(id: &str) -> ApiResult<Uuid> {
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
    /// `OnClaimed::Wait` only with the waitlist lock held.
    pub claiming: OnClaimed,
}

/// Assigns the best-scoring advisor with a free slot and records
/// `assignment.created`; None when nobody has capacity. A candidate that
/// filled up since it was read is skipped for the next best.
pub async fn assign_best(
    conn: &mut PgConnection,
    rules: &Rules,
    placement: Placement<'_>,
    now: DateTime<Utc>,
    events: &mut Vec<NewEvent>,
) -> ApiResult<Option<pb::Assignment>> {
    let mut candidates = store::free_candidates(conn, placement.exclude).await?;
    if let Some(only) = placement.only {
        candidates.retain(|candidate| candidate.advisor_id == only);
    }
    let ranked = matching::rank(&rules.weights, &placement.company.features, &candidates);
    for (advisor_id, score) in ranked {
        if !store::claim_slot(conn, advisor_id, placement.claiming).await? {
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
        let assignment = store::load_assignment(conn, id, Lock::None)
            .await?
            .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("assignment vanished")))?;
        let (need_id, case_id) = first_need(&assignment);
        events.push(
            NewEvent::new(
                MentoringEvent::AssignmentCreated,
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
            )
            .for_partners([Partner::advisor(advisor_id)]),
        );
        return Ok(Some(assignment));
    }
    Ok(None)
}

/// Places intake's hand-off: joins the company's current assignment or
/// queue entry, or assigns the best free advisor, or queues the company.
/// Call with the company's row locked (by storing its snapshot).
pub async fn place(
    tx: &mut PgConnection,
    rules: &Rules,
    request: &AdvisorRequest,
    now: DateTime<Utc>,
    events: &mut Vec<NewEvent>,
) -> ApiResult<Outcome> {
    if let Some(active) = store::active_assignment_of(tx, request.company_id).await? {
        let assignment_id = stored_id(&active.assignment_id)?;
        store::add_need_to_assignment(tx, assignment_id, request.need_id, request.case_id).await?;
        // A company that climbed the ladder gets the cadence of its new stage.
        store::set_stage(
            tx,
            assignment_id,
            request.stage,
            rules.cadence.interval_days(request.stage),
        )
        .await?;
        let joined = store::load_assignment(tx, assignment_id, Lock::None)
            .await?
            .unwrap_or(active);
        return Ok(Outcome::AlreadyAssigned(joined));
    }
    if let Some(waiting) = store::waiting_entry_of_company(tx, request.company_id).await? {
        return Ok(Outcome::Waitlisted(waiting));
    }
    let company = CompanyRecord {
        id: request.company_id,
        stage: request.stage,
        features: request.features.clone(),
    };
    let placement = |claiming| Placement {
        company: &company,
        exclude: None,
        only: None,
        predecessor: None,
        from_waitlist: false,
        claiming,
    };
    // A candidate that filled up under our feet can stay locked by the
    // failed claim; the savepoint lets go of such locks before this
    // transaction queues for the waitlist lock.
    let mut attempt = sqlx::Connection::begin(&mut *tx).await?;
    match assign_best(&mut attempt, rules, placement(OnClaimed::Skip), now, events).await? {
        Some(assignment) => {
            attempt.commit().await?;
            return Ok(Outcome::Assigned(assignment));
        }
        None => attempt.rollback().await?,
    }
    // Look again under the waitlist lock: a slot freed since the first
    // look would otherwise be missed by this request and by the fill.
    store::lock_waitlist(tx).await?;
    if let Some(assignment) =
        assign_best(tx, rules, placement(OnClaimed::Wait), now, events).await?
    {
        return Ok(Outcome::Assigned(assignment));
    }
    let need = Some((request.need_id, request.case_id));
    let entry = enqueue(tx, request.company_id, need, None, now, events).await?;
    Ok(Outcome::Waitlisted(entry))
}

/// Queues the company; call with the waitlist lock held.
pub async fn enqueue(
    conn: &mut PgConnection,
    company_id: Uuid,
    need: Option<(Uuid, Uuid)>,
    outgoing: Option<&pb::Assignment>,
    now: DateTime<Utc>,
    events: &mut Vec<NewEvent>,
) -> ApiResult<pb::WaitlistEntry> {
    let id = Uuid::now_v7();
    let outgoing_id = outgoing.map(|a| stored_id(&a.assignment_id)).transpose()?;
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
    events.push(NewEvent::new(
        MentoringEvent::AssignmentWaitlisted,
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
    events: &mut Vec<NewEvent>,
) -> ApiResult<u32> {
    let mut filled = 0;
    for waiting in store::claim_waiting(conn).await? {
        let Some(company) = store::lock_company(conn, waiting.company_id).await? else {
            continue;
        };
        // Never a second ACTIVE assignment: an entry whose company got an
        // advisor some other way is settled by that one.
        if let Some(active) = store::active_assignment_of(conn, company.id).await? {
            store::mark_filled(conn, waiting.id, stored_id(&active.assignment_id)?, now).await?;
            continue;
        }
        let outgoing = match waiting.outgoing {
            Some(id) => store::load_assignment(conn, id, Lock::ForUpdate).await?,
            None => None,
        };
        let exclude = outgoing
            .as_ref()
            .map(|a| stored_id(&a.advisor_id))
            .transpose()?;
        let placement = Placement {
            company: &company,
            exclude,
            only: None,
            predecessor: waiting.outgoing,
            from_waitlist: true,
            claiming: OnClaimed::Wait,
        };
        let Some(assignment) = assign_best(conn, rules, placement, now, events).await? else {
            // Every entry can take any free advisor, so one that finds
            // none means the pool is full.
            break;
        };
        store::mark_filled(conn, waiting.id, stored_id(&assignment.assignment_id)?, now).await?;
        if let Some(previous) = outgoing {
            link_successor(conn, &previous, &assignment, previous.end_reason, events).await?;
        }
        filled += 1;
    }
    Ok(filled)
}

/// Locks the assignment's company, then the assignment, which must be
/// ACTIVE; call with the waitlist lock held.
pub async fn lock_active_assignment(
    tx: &mut PgConnection,
    assignment_id: Uuid,
) -> ApiResult<(CompanyRecord, pb::Assignment)> {
    let current = store::load_assignment(tx, assignment_id, Lock::None)
        .await?
        .ok_or_else(|| ApiError::not_found("assignment", assignment_id))?;
    let company_id = stored_id(&current.company_id)?;
    let company = store::lock_company(tx, company_id)
        .await?
        .ok_or_else(|| ApiError::not_found("company", company_id))?;
    let current = store::load_assignment(tx, assignment_id, Lock::ForUpdate)
        .await?
        .ok_or_else(|| ApiError::not_found("assignment", assignment_id))?;
    if current.status != pb::AssignmentStatus::Active as i32 {
        return Err(ApiError::failed_precondition(
            "ASSIGNMENT_NOT_ACTIVE",
            format!("assignment {assignment_id} is not active"),
        ));
    }
    Ok((company, current))
}

/// How an outgoing assignment leaves.
pub struct Retirement<'a> {
    pub assignment: &'a pb::Assignment,
    pub reason: ChangeReason,
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
    let id = stored_id(&retirement.assignment.assignment_id)?;
    let advisor_id = stored_id(&retirement.assignment.advisor_id)?;
    let company_id = stored_id(&retirement.assignment.company_id)?;
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

/// Links the successor of a retirement and records the events of the change.
pub async fn record_successor(
    conn: &mut PgConnection,
    retirement: &Retirement<'_>,
    successor: &pb::Assignment,
    events: &mut Vec<NewEvent>,
) -> ApiResult<()> {
    let reason = retirement.reason.to_proto() as i32;
    link_successor(conn, retirement.assignment, successor, reason, events).await
}

/// Completes the recorded change from `previous` with `successor` and
/// raises `assignment.reassigned`.
async fn link_successor(
    conn: &mut PgConnection,
    previous: &pb::Assignment,
    successor: &pb::Assignment,
    reason: i32,
    events: &mut Vec<NewEvent>,
) -> ApiResult<()> {
    let previous_id = stored_id(&previous.assignment_id)?;
    let successor_id = stored_id(&successor.assignment_id)?;
    store::set_successor(conn, previous_id, successor_id).await?;
    store::complete_change(
        conn,
        previous_id,
        successor_id,
        stored_id(&successor.advisor_id)?,
    )
    .await?;
    let (need_id, case_id) = first_need(successor);
    events.push(
        NewEvent::new(
            MentoringEvent::AssignmentReassigned,
            &previous.company_id,
            &pb::AssignmentReassigned {
                company_id: previous.company_id.clone(),
                from_assignment_id: previous.assignment_id.clone(),
                to_assignment_id: successor.assignment_id.clone(),
                from_advisor_id: previous.advisor_id.clone(),
                to_advisor_id: successor.advisor_id.clone(),
                reason,
                need_id,
                case_id,
            },
        )
        // The outgoing advisor learns where the company went, the incoming one
        // that it arrived.
        .for_partners([
            Partner::advisor(&previous.advisor_id),
            Partner::advisor(&successor.advisor_id),
        ]),
    );
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
    let successor_assignment_id = successor
        .map(|s| s.assignment_id.clone())
        .unwrap_or_default();
    match retirement.handover_until {
        Some(until) => NewEvent::new(
            MentoringEvent::AssignmentHandoverStarted,
            &previous.assignment_id,
            &pb::AssignmentHandoverStarted {
                company_id: previous.company_id.clone(),
                outgoing_assignment_id: previous.assignment_id.clone(),
                outgoing_advisor_id: previous.advisor_id.clone(),
                successor_assignment_id,
                successor_advisor_id: successor.map(|s| s.advisor_id.clone()).unwrap_or_default(),
                handover_until: Some(to_timestamp(until)),
                need_id,
                case_id,
            },
        )
        .for_partners(
            [Some(&previous.advisor_id), successor.map(|s| &s.advisor_id)]
                .into_iter()
                .flatten()
                .map(Partner::advisor),
        ),
        None => ended_event(pb::AssignmentEnded {
            assignment_id: previous.assignment_id.clone(),
            company_id: previous.company_id.clone(),
            advisor_id: previous.advisor_id.clone(),
            reason: retirement.reason.to_proto() as i32,
            successor_assignment_id,
            need_id,
            case_id,
        }),
    }
}

pub fn ended_event(ended: pb::AssignmentEnded) -> NewEvent {
    NewEvent::new(
        MentoringEvent::AssignmentEnded,
        ended.assignment_id.clone(),
        &ended,
    )
    .for_partners([Partner::advisor(&ended.advisor_id)])
}

/// Hands every company of an advisor that just went inactive (under its
/// row lock) to a successor matched on the same features, or queues it
/// ahead of new requests; both advisors stay listed for `days`. Call with
/// the waitlist lock held.
pub async fn hand_over_companies(
    conn: &mut PgConnection,
    rules: &Rules,
    advisor_id: Uuid,
    days: u32,
    now: DateTime<Utc>,
    events: &mut Vec<NewEvent>,
) -> ApiResult<Vec<pb::Handover>> {
    // Inactive under the row lock, the advisor takes no new company, so
    // this list is complete. Companies are locked in id order.
    let mut companies = store::companies_of_advisor(conn, advisor_id).await?;
    companies.sort();
    let mut records = Vec::new();
    for company in &companies {
        if let Some(record) = store::lock_company(conn, *company).await? {
            records.push(record);
        }
    }
    let handover_until = now + Duration::days(i64::from(days));
    let mut handovers = Vec::new();
    for company in &records {
        let Some(outgoing) = store::active_assignment_of(conn, company.id).await? else {
            continue;
        };
        if outgoing.advisor_id != advisor_id.to_string() {
            continue;
        }
        let retirement = Retirement {
            assignment: &outgoing,
            reason: ChangeReason::AdvisorLeft,
            note: String::new(),
            handover_until: Some(handover_until),
        };
        retire(conn, &retirement, now).await?;
        let placement = Placement {
            company,
            exclude: Some(advisor_id),
            only: None,
            predecessor: Some(stored_id(&outgoing.assignment_id)?),
            from_waitlist: false,
            claiming: OnClaimed::Wait,
        };
        let successor = assign_best(conn, rules, placement, now, events).await?;
        events.push(departure_event(&retirement, successor.as_ref()));
        let successor = match successor {
            Some(successor) => {
                record_successor(conn, &retirement, &successor, events).await?;
                pb::handover::Successor::SuccessorAssignment(successor)
            }
            None => pb::handover::Successor::Waitlisted(
                enqueue(conn, company.id, None, Some(&outgoing), now, events).await?,
            ),
        };
        handovers.push(pb::Handover {
            company_id: company.id.to_string(),
            outgoing_assignment_id: outgoing.assignment_id.clone(),
            handover_until: Some(to_timestamp(handover_until)),
            successor: Some(successor),
        });
    }
    Ok(handovers)
}
