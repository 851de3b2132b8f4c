//! Requests and complaints on cases, and the agencies that may be asked
//! to answer them.

use chrono::{DateTime, Utc};
use onestop_contracts::intake::v1 as pb;
use onestop_platform::time::to_timestamp;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::domain::request::{
    Channel, Raiser, RequestKind, RequestQuery, RequestScope, RequestState,
};

const COLUMNS: &str = "id, case_id, company_id, kind, raised_by, channel, answering_agency_id,
                       summary, state, answer, escalation_level, escalation_reason, recorded_by,
                       raised_at, due_at, escalated_at, answered_at, overdue_at";

/// Sweeps claim at most this many overdue requests per transaction; the
/// rest wait for the next pass.
const OVERDUE_BATCH: i64 = 500;

fn from_row(row: &PgRow) -> pb::CaseRequest {
    let at = |column: &str| {
        row.get::<Option<DateTime<Utc>>, _>(column)
            .map(to_timestamp)
    };
    let proto = |value: Option<i32>| value.unwrap_or_default();
    pb::CaseRequest {
        request_id: row.get::<Uuid, _>("id").to_string(),
        case_id: row.get::<Uuid, _>("case_id").to_string(),
        company_id: row.get::<Uuid, _>("company_id").to_string(),
        kind: proto(RequestKind::from_stored(row.get("kind")).map(|k| k.to_proto() as i32)),
        raised_by: proto(Raiser::from_stored(row.get("raised_by")).map(|r| r.to_proto() as i32)),
        channel: proto(Channel::from_stored(row.get("channel")).map(|c| c.to_proto() as i32)),
        answering_agency_id: row.get("answering_agency_id"),
        due_at: at("due_at"),
        summary: row.get("summary"),
        state: proto(RequestState::from_stored(row.get("state")).map(|s| s.to_proto() as i32)),
        answer: row.get("answer"),
        escalation_level: row.get::<i32, _>("escalation_level").max(0) as u32,
        escalation_reason: row.get("escalation_reason"),
        recorded_by: row.get("recorded_by"),
        raised_at: at("raised_at"),
        escalated_at: at("escalated_at"),
        answered_at: at("answered_at"),
        overdue_at: at("overdue_at"),
    }
}

/// Whether the agency may be asked to answer requests.
pub async fn agency_known(conn: &mut PgConnection, agency_id: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM answering_agency WHERE agency_id = $1)")
        .bind(agency_id)
        .fetch_one(conn)
        .await
}

/// Records an agency the directory holds.
pub async fn remember_agency(conn: &mut PgConnection, agency_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO answering_agency (agency_id) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(agency_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// A request to record.
pub struct RequestRow<'a> {
    pub request_id: Uuid,
    pub case_id: Uuid,
    pub company_id: Uuid,
    pub kind: RequestKind,
    pub raised_by: Raiser,
    pub channel: Channel,
    pub answering_agency_id: &'a str,
    pub summary: &'a str,
    pub due_in_days: u32,
    pub recorded_by: &'a str,
}

pub async fn insert_request(
    conn: &mut PgConnection,
    request: &RequestRow<'_>,
) -> Result<pb::CaseRequest, sqlx::Error> {
    let row = sqlx::query(&format!(
        "INSERT INTO case_request (id, case_id, company_id, kind, raised_by, channel,
                                   answering_agency_id, summary, state, recorded_by, due_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'OPEN', $9, now() + make_interval(days => $10))
         RETURNING {COLUMNS}"
    ))
    .bind(request.request_id)
    .bind(request.case_id)
    .bind(request.company_id)
    .bind(request.kind.as_str())
    .bind(request.raised_by.as_str())
    .bind(request.channel.as_str())
    .bind(request.answering_agency_id)
    .bind(request.summary)
    .bind(request.recorded_by)
    .bind(request.due_in_days as i32)
    .fetch_one(conn)
    .await?;
    Ok(from_row(&row))
}

/// A request as a change to it needs it, locked until the transaction
/// ends.
#[derive(Debug, Clone)]
pub struct LockedRequest {
    pub request_id: Uuid,
    pub case_id: Uuid,
    pub company_id: Uuid,
    pub state: RequestState,
    pub escalation_level: u32,
    pub answering_agency_id: String,
    pub due_at: DateTime<Utc>,
}

pub async fn lock_request(
    conn: &mut PgConnection,
    request_id: Uuid,
) -> Result<Option<LockedRequest>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT id, case_id, company_id, state, escalation_level, answering_agency_id, due_at
           FROM case_request WHERE id = $1 FOR UPDATE",
    )
    .bind(request_id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|row| LockedRequest {
        request_id: row.get("id"),
        case_id: row.get("case_id"),
        company_id: row.get("company_id"),
        state: RequestState::from_stored(row.get("state")).unwrap_or(RequestState::Open),
        escalation_level: row.get::<i32, _>("escalation_level").max(0) as u32,
        answering_agency_id: row.get("answering_agency_id"),
        due_at: row.get("due_at"),
    }))
}

/// Records the answer; returns the request as it now stands.
pub async fn answer_request(
    conn: &mut PgConnection,
    request_id: Uuid,
    answer: &str,
) -> Result<pb::CaseRequest, sqlx::Error> {
    let row = sqlx::query(&format!(
        "UPDATE case_request SET state = 'ANSWERED', answer = $2, answered_at = now()
          WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(request_id)
    .bind(answer)
    .fetch_one(conn)
    .await?;
    Ok(from_row(&row))
}

/// Passes the request on with a new due date, which may go overdue again.
pub async fn escalate_request(
    conn: &mut PgConnection,
    request_id: Uuid,
    to_agency_id: &str,
    reason: &str,
    due_in_days: u32,
) -> Result<pb::CaseRequest, sqlx::Error> {
    let row = sqlx::query(&format!(
        "UPDATE case_request
            SET state = 'ESCALATED', answering_agency_id = $2, escalation_reason = $3,
                escalation_level = escalation_level + 1, escalated_at = now(),
                due_at = now() + make_interval(days => $4), overdue_at = NULL
          WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(request_id)
    .bind(to_agency_id)
    .bind(reason)
    .bind(due_in_days as i32)
    .fetch_one(conn)
    .await?;
    Ok(from_row(&row))
}

/// Oldest due first, each with its page key, as `scope` allows.
pub async fn list_requests(
    conn: &mut PgConnection,
    scope: &RequestScope,
    query: &RequestQuery,
) -> Result<Vec<((DateTime<Utc>, Uuid), pb::CaseRequest)>, sqlx::Error> {
    let (agency, advisor) = match scope {
        RequestScope::All => (None, None),
        RequestScope::AnsweredBy(agency) => (Some(agency.as_str()), None),
        RequestScope::AdvisorOf(advisor) => (None, Some(advisor.as_str())),
    };
    let (after_due, after_id) = query.page.after.unzip();
    let states: Vec<&str> = query.states.iter().map(|s| s.as_str()).collect();
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM case_request r
          WHERE r.state = ANY($1)
            AND ($2::uuid IS NULL OR r.company_id = $2)
            AND ($3::text IS NULL OR r.answering_agency_id = $3)
            AND ($4::text IS NULL OR EXISTS (
                    SELECT 1 FROM company_partner p
                     WHERE p.company_id = r.company_id AND p.role = 'advisor'
                       AND p.tenant = $4 AND p.state <> 'ENDED'))
            AND ($5::timestamptz IS NULL OR (r.due_at, r.id) > ($5, $6))
          ORDER BY r.due_at, r.id
          LIMIT $7"
    ))
    .bind(&states)
    .bind(query.company_id)
    .bind(agency)
    .bind(advisor)
    .bind(after_due)
    .bind(after_id)
    .bind(query.page.fetch_limit())
    .fetch_all(conn)
    .await?;
    Ok(rows
        .iter()
        .map(|row| ((row.get("due_at"), row.get("id")), from_row(row)))
        .collect())
}

/// An unanswered request past its due date, claimed for its one
/// request.overdue.
#[derive(Debug, Clone)]
pub struct OverdueRequest {
    pub request_id: Uuid,
    pub case_id: Uuid,
    pub company_id: Uuid,
    pub answering_agency_id: String,
    pub kind: RequestKind,
    pub escalation_level: u32,
    pub due_at: DateTime<Utc>,
}

/// Marks the unanswered requests due by `now` whose overdue event was not
/// raised for their due date, and returns them. Rows another sweep holds
/// are skipped, so replicas never raise one twice.
pub async fn claim_overdue(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
) -> Result<Vec<OverdueRequest>, sqlx::Error> {
    let rows = sqlx::query(
        "UPDATE case_request SET overdue_at = $1
          WHERE id IN (SELECT id FROM case_request
                        WHERE state <> 'ANSWERED' AND overdue_at IS NULL AND due_at <= $1
                        ORDER BY due_at
                        LIMIT $2
                        FOR UPDATE SKIP LOCKED)
         RETURNING id, case_id, company_id, answering_agency_id, kind, escalation_level, due_at",
    )
    .bind(now)
    .bind(OVERDUE_BATCH)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .iter()
        .map(|row| OverdueRequest {
            request_id: row.get("id"),
            case_id: row.get("case_id"),
            company_id: row.get("company_id"),
            answering_agency_id: row.get("answering_agency_id"),
            kind: RequestKind::from_stored(row.get("kind")).unwrap_or(RequestKind::Request),
            escalation_level: row.get::<i32, _>("escalation_level").max(0) as u32,
            due_at: row.get("due_at"),
        })
        .collect())
}

/// The advisors that work with the company now.
pub async fn advisors_of(
    conn: &mut PgConnection,
    company_id: Uuid,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT DISTINCT tenant FROM company_partner
          WHERE company_id = $1 AND role = 'advisor' AND state <> 'ENDED'
          ORDER BY tenant",
    )
    .bind(company_id)
    .fetch_all(conn)
    .await
}

/// Erases the words of the company's requests (summaries, answers,
/// escalation reasons); returns how many requests held any.
pub async fn erase_request_texts(
    conn: &mut PgConnection,
    company_id: Uuid,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE case_request SET summary = '', answer = '', escalation_reason = ''
          WHERE company_id = $1 AND (summary <> '' OR answer <> '' OR escalation_reason <> '')",
    )
    .bind(company_id)
    .execute(conn)
    .await?
    .rows_affected())
}
