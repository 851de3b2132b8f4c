//! Cases and their needs: what OpenCase writes, what the relay hands over
//! and what the owners' events move on.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use onestop_contracts::common::v1::NeedHandOff;
use onestop_contracts::intake::v1 as pb;
use onestop_domain::{NeedCategory, NeedOwner};
use onestop_platform::pagination::{Page, encode_token};
use onestop_platform::time::to_timestamp;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::{Lock, load_company};
use crate::domain::case::{
    CaseFilter, CaseStatus, CategoryOwners, CloseCause, NeedStatus, PlannedNeed,
};
use crate::domain::company::snapshot;
use crate::domain::partner::Partner;

/// Which service serves each need category, as the `category_owner`
/// table says now.
pub async fn category_owners(conn: &mut PgConnection) -> Result<CategoryOwners, sqlx::Error> {
    let rows: Vec<(String, String)> = sqlx::query_as("SELECT category, owner FROM category_owner")
        .fetch_all(conn)
        .await?;
    owners_from(&rows)
}

/// The `category_owner` rows (category, owner) as routing reads them.
pub fn owners_from(rows: &[(String, String)]) -> Result<CategoryOwners, sqlx::Error> {
    let owners = rows
        .iter()
        .filter_map(|(category, owner)| {
            Some((
                NeedCategory::from_stored(category)?,
                NeedOwner::from_stored(owner)?,
            ))
        })
        .collect();
    CategoryOwners::new(owners).ok_or_else(|| {
        // A fault of intake's own data, not of the database's reachability.
        sqlx::Error::Decode("category_owner names no owner for some need category".into())
    })
}

pub async fn insert_case(
    conn: &mut PgConnection,
    case_id: Uuid,
    company_id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO support_case (id, company_id, status) VALUES ($1, $2, $3)")
        .bind(case_id)
        .bind(company_id)
        .bind(CaseStatus::Open.as_str())
        .execute(conn)
        .await?;
    Ok(())
}

/// Stores an OPEN need awaiting delivery; returns when it was opened.
pub async fn insert_need(
    conn: &mut PgConnection,
    need_id: Uuid,
    case_id: Uuid,
    position: usize,
    need: &PlannedNeed,
) -> Result<DateTime<Utc>, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO need (id, case_id, position, category, owner, detail, target_markets, hs_codes,
                           status, added_by_rule, delivery, program_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'PENDING', $11)
         RETURNING opened_at",
    )
    .bind(need_id)
    .bind(case_id)
    .bind(position as i32)
    .bind(need.spec.category.as_str())
    .bind(need.owner.as_str())
    .bind(&need.spec.detail)
    .bind(need.spec.target_markets.iter().map(|c| c.as_str()).collect::<Vec<_>>())
    .bind(need.spec.hs_codes.iter().map(|c| c.as_str()).collect::<Vec<_>>())
    .bind(NeedStatus::Open.as_str())
    .bind(need.added_by_rule)
    .bind(&need.spec.program_id)
    .fetch_one(conn)
    .await
}

fn delivery_state(stored: &str) -> pb::DeliveryState {
    match stored {
        "PENDING" => pb::DeliveryState::Pending,
        "DELIVERED" => pb::DeliveryState::Delivered,
        "WITHDRAWN" => pb::DeliveryState::Withdrawn,
        "PARKED" => pb::DeliveryState::Parked,
        _ => pb::DeliveryState::Unspecified,
    }
}

fn need(row: &PgRow) -> pb::Need {
    let delivery = delivery_state(row.get("delivery"));
    pb::Need {
        need_id: row.get::<Uuid, _>("id").to_string(),
        category: NeedCategory::from_stored(row.get("category"))
            .map(|c| c.to_proto() as i32)
            .unwrap_or_default(),
        owner: NeedOwner::from_stored(row.get("owner"))
            .map(|o| o.to_proto() as i32)
            .unwrap_or_default(),
        detail: row.get("detail"),
        target_markets: row.get("target_markets"),
        hs_codes: row.get("hs_codes"),
        status: NeedStatus::from_stored(row.get("status"))
            .map(|s| s.to_proto() as i32)
            .unwrap_or_default(),
        added_by_rule: row.get("added_by_rule"),
        delivery: delivery as i32,
        delivery_attempts: row.get::<i32, _>("delivery_attempts").max(0) as u32,
        opened_at: Some(to_timestamp(row.get("opened_at"))),
        last_delivery_error: row.get("last_delivery_error"),
        next_delivery_at: (delivery == pb::DeliveryState::Pending)
            .then(|| to_timestamp(row.get("next_delivery_at"))),
        delivered_at: row
            .get::<Option<DateTime<Utc>>, _>("delivered_at")
            .map(to_timestamp),
        owner_record_id: row.get("owner_record_id"),
        cancel_reason: row.get("cancel_reason"),
        finished_at: row
            .get::<Option<DateTime<Utc>>, _>("finished_at")
            .map(to_timestamp),
        program_id: row.get("program_id"),
    }
}

/// Needs a `Case` message carries; a case with more names the rest with
/// `next_needs_page_token`, read through ListCaseNeeds, so a case that
/// keeps growing never outgrows the message limit.
pub const NEEDS_SHOWN_ON_CASE: u32 = 50;

const NEED_COLUMNS: &str = "case_id, id, position, category, owner, detail, target_markets,
    hs_codes, status, added_by_rule, delivery, delivery_attempts, opened_at, last_delivery_error,
    next_delivery_at, delivered_at, owner_record_id, cancel_reason, finished_at, program_id";

/// The needs a case shows, and the token for the rest (empty for none).
#[derive(Debug, Default)]
struct ShownNeeds {
    needs: Vec<pb::Need>,
    next_page_token: String,
}

/// The first needs of several cases in one round trip, each case's in its
/// order.
async fn needs_of(
    conn: &mut PgConnection,
    case_ids: &[Uuid],
) -> Result<HashMap<Uuid, ShownNeeds>, sqlx::Error> {
    // One row past the shown ones says whether a case has more.
    let rows = sqlx::query(&format!(
        "SELECT {NEED_COLUMNS} FROM (
                SELECT *, row_number() OVER (PARTITION BY case_id ORDER BY position) AS nth
                  FROM need WHERE case_id = ANY($1)) ranked
          WHERE nth <= $2
          ORDER BY case_id, position"
    ))
    .bind(case_ids)
    .bind(i64::from(NEEDS_SHOWN_ON_CASE) + 1)
    .fetch_all(conn)
    .await?;
    let mut by_case: HashMap<Uuid, (ShownNeeds, i32)> = HashMap::new();
    for row in &rows {
        let (shown, last_position) = by_case.entry(row.get("case_id")).or_default();
        if shown.needs.len() == NEEDS_SHOWN_ON_CASE as usize {
            shown.next_page_token = encode_token(last_position);
        } else {
            shown.needs.push(need(row));
            *last_position = row.get("position");
        }
    }
    Ok(by_case
        .into_iter()
        .map(|(id, (shown, _))| (id, shown))
        .collect())
}

/// A page of the case's needs in their order, each with its position.
pub async fn list_needs(
    conn: &mut PgConnection,
    case_id: Uuid,
    page: &Page<i32>,
) -> Result<Vec<(i32, pb::Need)>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {NEED_COLUMNS} FROM need
          WHERE case_id = $1 AND ($2::integer IS NULL OR position > $2)
          ORDER BY position LIMIT $3"
    ))
    .bind(case_id)
    .bind(page.after)
    .bind(page.fetch_limit())
    .fetch_all(conn)
    .await?;
    Ok(rows
        .iter()
        .map(|row| (row.get("position"), need(row)))
        .collect())
}

/// One need of the case; None when the case has no such need.
pub async fn load_need(
    conn: &mut PgConnection,
    case_id: Uuid,
    need_id: Uuid,
) -> Result<Option<pb::Need>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {NEED_COLUMNS} FROM need WHERE id = $1 AND case_id = $2"
    ))
    .bind(need_id)
    .bind(case_id)
    .fetch_optional(conn)
    .await?;
    Ok(row.as_ref().map(need))
}

/// Case rows with their first needs, in the rows' order.
async fn with_needs(
    conn: &mut PgConnection,
    rows: Vec<PgRow>,
) -> Result<Vec<pb::Case>, sqlx::Error> {
    let ids: Vec<Uuid> = rows.iter().map(|row| row.get("id")).collect();
    let mut needs = needs_of(conn, &ids).await?;
    Ok(rows
        .iter()
        .map(|row| {
            let shown = needs.remove(&row.get("id")).unwrap_or_default();
            case_from_row(row, &CASE_COLUMNS, shown)
        })
        .collect())
}

/// Where a row holds a case's columns: id, company_id, status, opened_at,
/// closed_at, close_cause, outcome_summary.
type CaseColumnNames = [&'static str; 7];

const CASE_COLUMNS: CaseColumnNames = [
    "id",
    "company_id",
    "status",
    "opened_at",
    "closed_at",
    "close_cause",
    "outcome_summary",
];

fn case_from_row(row: &PgRow, columns: &CaseColumnNames, shown: ShownNeeds) -> pb::Case {
    let [
        id,
        company_id,
        status,
        opened_at,
        closed_at,
        close_cause,
        outcome_summary,
    ] = *columns;
    pb::Case {
        case_id: row.get::<Uuid, _>(id).to_string(),
        company_id: row.get::<Uuid, _>(company_id).to_string(),
        status: CaseStatus::from_stored(row.get(status))
            .map(|s| s.to_proto() as i32)
            .unwrap_or_default(),
        needs: shown.needs,
        next_needs_page_token: shown.next_page_token,
        opened_at: Some(to_timestamp(row.get(opened_at))),
        closed_at: row
            .get::<Option<DateTime<Utc>>, _>(closed_at)
            .map(to_timestamp),
        close_cause: CloseCause::from_stored(row.get(close_cause))
            .map(|c| c.to_proto() as i32)
            .unwrap_or_default(),
        outcome_summary: row.get(outcome_summary),
    }
}

const CASE_COLUMNS_BY_ID: &str =
    "SELECT id, company_id, status, opened_at, closed_at, close_cause, outcome_summary
       FROM support_case WHERE id = $1";

pub async fn load_case(
    conn: &mut PgConnection,
    case_id: Uuid,
) -> Result<Option<pb::Case>, sqlx::Error> {
    let row = sqlx::query(CASE_COLUMNS_BY_ID)
        .bind(case_id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(with_needs(conn, row.into_iter().collect()).await?.pop())
}

/// The company a case belongs to; None when there is no such case.
pub async fn company_of_case(
    conn: &mut PgConnection,
    case_id: Uuid,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar("SELECT company_id FROM support_case WHERE id = $1")
        .bind(case_id)
        .fetch_optional(conn)
        .await
}

/// Where a need belongs: its case, the case's company and the need's owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeedPlace {
    pub case_id: Uuid,
    pub company_id: Uuid,
    pub owner: Option<NeedOwner>,
}

pub async fn need_place(
    conn: &mut PgConnection,
    need_id: Uuid,
) -> Result<Option<NeedPlace>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT n.case_id, c.company_id, n.owner
           FROM need n JOIN support_case c ON c.id = n.case_id
          WHERE n.id = $1",
    )
    .bind(need_id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|row| NeedPlace {
        case_id: row.get("case_id"),
        company_id: row.get("company_id"),
        owner: NeedOwner::from_stored(row.get("owner")),
    }))
}

/// Whether any need of the company was handed to `owner`: an owner only
/// reports on companies it serves.
pub async fn serves_company(
    conn: &mut PgConnection,
    company_id: Uuid,
    owner: NeedOwner,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM need n JOIN support_case c ON c.id = n.case_id
                         WHERE c.company_id = $1 AND n.owner = $2)",
    )
    .bind(company_id)
    .bind(owner.as_str())
    .fetch_one(conn)
    .await
}

/// Blanks the free text of every need of the company (details and
/// cancellation reasons); returns how many needs had any.
pub async fn erase_need_details(
    conn: &mut PgConnection,
    company_id: Uuid,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE need SET detail = '', cancel_reason = ''
          WHERE (detail <> '' OR cancel_reason <> '')
            AND case_id IN (SELECT id FROM support_case WHERE company_id = $1)",
    )
    .bind(company_id)
    .execute(conn)
    .await?
    .rows_affected())
}

/// Oldest first, each with its id; only cases of companies `partner`
/// works with when one is given.
pub async fn list_cases(
    conn: &mut PgConnection,
    filter: &CaseFilter,
    partner: Option<&Partner>,
    page: &Page<Uuid>,
) -> Result<Vec<(Uuid, pb::Case)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, company_id, status, opened_at, closed_at, close_cause, outcome_summary
           FROM support_case
          WHERE ($1::uuid IS NULL OR id > $1)
            AND ($2::uuid IS NULL OR company_id = $2)
            AND ($3::text IS NULL OR status = $3)
            AND ($5::text IS NULL OR company_id IN (
                    SELECT company_id FROM company_partner
                     WHERE role = $5 AND tenant = $6 AND state <> 'ENDED'))
          ORDER BY id LIMIT $4",
    )
    .bind(page.after)
    .bind(filter.company_id)
    .bind(filter.status.map(CaseStatus::as_str))
    .bind(page.fetch_limit())
    .bind(partner.map(|p| p.role.as_str()))
    .bind(partner.map(|p| p.tenant.as_str()))
    .fetch_all(&mut *conn)
    .await?;
    let ids: Vec<Uuid> = rows.iter().map(|row| row.get("id")).collect();
    Ok(ids.into_iter().zip(with_needs(conn, rows).await?).collect())
}

/// The hand-off for a need whose `need.opened` event retention has
/// already pruned: the need as stored and the company as it is now.
pub async fn rebuild_hand_off(
    conn: &mut PgConnection,
    case_id: Uuid,
    need_id: Uuid,
) -> Result<Option<NeedHandOff>, sqlx::Error> {
    // The need itself, not the case: a case shows only its first needs.
    let Some(need) = load_need(conn, case_id, need_id).await? else {
        return Ok(None);
    };
    let Some(company_id) = company_of_case(conn, case_id).await? else {
        return Ok(None);
    };
    let company = load_company(conn, company_id, Lock::None).await?;
    Ok(Some(NeedHandOff {
        need_id: need.need_id,
        case_id: case_id.to_string(),
        category: need.category,
        owner: need.owner,
        detail: need.detail,
        target_markets: need.target_markets,
        hs_codes: need.hs_codes,
        company: company.as_ref().map(snapshot),
        opened_at: need.opened_at,
        program_id: need.program_id,
    }))
}

pub async fn case_of_need(
    conn: &mut PgConnection,
    need_id: Uuid,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar("SELECT case_id FROM need WHERE id = $1")
        .bind(need_id)
        .fetch_optional(conn)
        .await
}

/// The latest of the company's open cases that hold an open need of
/// `category`, with that need; failing that, its latest open case.
pub async fn open_case_for(
    conn: &mut PgConnection,
    company_id: Uuid,
    category: NeedCategory,
) -> Result<Option<(Uuid, Option<Uuid>)>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT c.id AS case_id, n.id AS need_id
           FROM support_case c
           LEFT JOIN need n ON n.case_id = c.id AND n.category = $2
                           AND n.status NOT IN ('DONE', 'CANCELLED')
          WHERE c.company_id = $1 AND c.status = $3
          ORDER BY (n.id IS NULL), c.opened_at DESC, n.position
          LIMIT 1",
    )
    .bind(company_id)
    .bind(category.as_str())
    .bind(CaseStatus::Open.as_str())
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|row| (row.get("case_id"), row.get("need_id"))))
}

pub async fn set_need_status(
    conn: &mut PgConnection,
    need_id: Uuid,
    status: NeedStatus,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE need SET status = $2,
                         finished_at = CASE WHEN $3 THEN now() ELSE finished_at END
          WHERE id = $1",
    )
    .bind(need_id)
    .bind(status.as_str())
    .bind(status.is_finished())
    .execute(conn)
    .await?;
    Ok(())
}

/// A need of a case as a change to it sees it, locked until the
/// transaction ends.
#[derive(Debug, Clone, Copy)]
pub struct LockedNeed {
    pub need_id: Uuid,
    pub category: NeedCategory,
    pub owner: NeedOwner,
    pub status: NeedStatus,
}

fn locked_need(row: &PgRow) -> Result<LockedNeed, sqlx::Error> {
    let need_id: Uuid = row.get("id");
    let broken =
        |what: &str| sqlx::Error::Decode(format!("need {need_id} has an unknown {what}").into());
    Ok(LockedNeed {
        need_id,
        category: NeedCategory::from_stored(row.get("category"))
            .ok_or_else(|| broken("category"))?,
        owner: NeedOwner::from_stored(row.get("owner")).ok_or_else(|| broken("owner"))?,
        status: NeedStatus::from_stored(row.get("status")).ok_or_else(|| broken("status"))?,
    })
}

/// The case's need, locked; None when the case has no such need.
pub async fn lock_need(
    conn: &mut PgConnection,
    case_id: Uuid,
    need_id: Uuid,
) -> Result<Option<LockedNeed>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT id, category, owner, status FROM need WHERE id = $1 AND case_id = $2 FOR UPDATE",
    )
    .bind(need_id)
    .bind(case_id)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(locked_need).transpose()
}

/// The case's needs that are neither DONE nor CANCELLED, locked, in order.
pub async fn lock_unfinished_needs(
    conn: &mut PgConnection,
    case_id: Uuid,
) -> Result<Vec<LockedNeed>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, category, owner, status FROM need
          WHERE case_id = $1 AND status NOT IN ('DONE', 'CANCELLED')
          ORDER BY position FOR UPDATE",
    )
    .bind(case_id)
    .fetch_all(conn)
    .await?;
    rows.iter().map(locked_need).collect()
}

/// Cancels the need with its reason. A need its owner was not told of yet
/// is withdrawn from delivery: the owner never opens a record for it.
pub async fn cancel_need(
    conn: &mut PgConnection,
    need_id: Uuid,
    reason: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE need SET status = $2, cancel_reason = $3, finished_at = now(),
                         delivery = CASE WHEN delivery = 'PENDING' THEN 'WITHDRAWN' ELSE delivery END
          WHERE id = $1",
    )
    .bind(need_id)
    .bind(NeedStatus::Cancelled.as_str())
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(())
}

/// How many of the case's needs are DONE, CANCELLED and neither.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct NeedTally {
    pub done: u32,
    pub cancelled: u32,
    pub unfinished: u32,
}

pub async fn tally_needs(conn: &mut PgConnection, case_id: Uuid) -> Result<NeedTally, sqlx::Error> {
    let (done, cancelled, unfinished): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status = 'DONE'),
                count(*) FILTER (WHERE status = 'CANCELLED'),
                count(*) FILTER (WHERE status NOT IN ('DONE', 'CANCELLED'))
           FROM need WHERE case_id = $1",
    )
    .bind(case_id)
    .fetch_one(conn)
    .await?;
    let count = |n: i64| n.clamp(0, u32::MAX as i64) as u32;
    Ok(NeedTally {
        done: count(done),
        cancelled: count(cancelled),
        unfinished: count(unfinished),
    })
}

/// The case's company and status, with the case locked: changes to a
/// case's needs take this lock first, so the last need to finish sees
/// every other need's final status. NO KEY UPDATE, because the relay
/// writes timeline lines (which reference the case) while it holds a
/// need's lock, and must not wait for this one.
pub async fn lock_case_status(
    conn: &mut PgConnection,
    case_id: Uuid,
) -> Result<Option<(Uuid, CaseStatus)>, sqlx::Error> {
    let row =
        sqlx::query("SELECT company_id, status FROM support_case WHERE id = $1 FOR NO KEY UPDATE")
            .bind(case_id)
            .fetch_optional(conn)
            .await?;
    Ok(row.map(|row| {
        let status = CaseStatus::from_stored(row.get("status")).unwrap_or(CaseStatus::Open);
        (row.get("company_id"), status)
    }))
}

/// [`lock_case_status`] and [`lock_need`] in one statement, in the same
/// order (the case, then its need): the case's company and the need;
/// None when the case has no such need.
pub async fn lock_case_and_need(
    conn: &mut PgConnection,
    case_id: Uuid,
    need_id: Uuid,
) -> Result<Option<(Uuid, LockedNeed)>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT c.company_id, n.id, n.category, n.owner, n.status
           FROM support_case c JOIN need n ON n.case_id = c.id
          WHERE c.id = $1 AND n.id = $2
            FOR NO KEY UPDATE OF c FOR UPDATE OF n",
    )
    .bind(case_id)
    .bind(need_id)
    .fetch_optional(conn)
    .await?;
    row.map(|row| Ok((row.get("company_id"), locked_need(&row)?)))
        .transpose()
}

pub async fn close_case(
    conn: &mut PgConnection,
    case_id: Uuid,
    cause: CloseCause,
    outcome_summary: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE support_case
            SET status = $2, closed_at = now(), close_cause = $3, outcome_summary = $4
          WHERE id = $1",
    )
    .bind(case_id)
    .bind(CaseStatus::Closed.as_str())
    .bind(cause.as_str())
    .bind(outcome_summary)
    .execute(conn)
    .await?;
    Ok(())
}

/// Blanks the outcome summaries of the company's closed cases; returns
/// how many had one.
pub async fn erase_case_outcomes(
    conn: &mut PgConnection,
    company_id: Uuid,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE support_case SET outcome_summary = ''
          WHERE company_id = $1 AND outcome_summary <> ''",
    )
    .bind(company_id)
    .execute(conn)
    .await?
    .rows_affected())
}

/// Whether the case has an open need of `category` opened on a finding
/// about `topic` (upper case), exactly: a gap in "CE" is not one in
/// "CCC", nor in whatever a need's detail happens to spell.
pub async fn has_open_need_on(
    conn: &mut PgConnection,
    case_id: Uuid,
    category: NeedCategory,
    topic: &str,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM need
                         WHERE case_id = $1 AND category = $2
                           AND status NOT IN ('DONE', 'CANCELLED')
                           AND topic = $3)",
    )
    .bind(case_id)
    .bind(category.as_str())
    .bind(topic)
    .fetch_one(conn)
    .await
}

/// Records what a need opened on a finding is about.
pub async fn set_need_topic(
    conn: &mut PgConnection,
    need_id: Uuid,
    topic: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE need SET topic = $2 WHERE id = $1")
        .bind(need_id)
        .bind(topic)
        .execute(conn)
        .await?;
    Ok(())
}

/// Where the next need goes on the case.
pub async fn next_need_position(
    conn: &mut PgConnection,
    case_id: Uuid,
) -> Result<usize, sqlx::Error> {
    let position: i32 =
        sqlx::query_scalar("SELECT COALESCE(max(position) + 1, 0) FROM need WHERE case_id = $1")
            .bind(case_id)
            .fetch_one(conn)
            .await?;
    Ok(position.max(0) as usize)
}

/// The categories of the company's needs still open, on any of its cases.
pub async fn open_need_categories(
    conn: &mut PgConnection,
    company_id: Uuid,
) -> Result<Vec<NeedCategory>, sqlx::Error> {
    let stored: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT n.category FROM need n JOIN support_case c ON c.id = n.case_id
          WHERE c.company_id = $1 AND n.status NOT IN ('DONE', 'CANCELLED')",
    )
    .bind(company_id)
    .fetch_all(conn)
    .await?;
    Ok(stored
        .iter()
        .filter_map(|c| NeedCategory::from_stored(c))
        .collect())
}

/// The company's latest open case, locked so a feed follower closing it
/// waits for (or is waited on by) the needs added to it.
pub async fn lock_latest_open_case(
    conn: &mut PgConnection,
    company_id: Uuid,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM support_case WHERE company_id = $1 AND status = $2
          ORDER BY opened_at DESC, id DESC LIMIT 1 FOR UPDATE",
    )
    .bind(company_id)
    .bind(CaseStatus::Open.as_str())
    .fetch_optional(conn)
    .await
}

/// The case's columns in [`insert_opened_case`]'s rows, beside its needs'.
const OPENED_CASE_COLUMNS: CaseColumnNames = [
    "case_row_id",
    "case_company_id",
    "case_status",
    "case_opened_at",
    "case_closed_at",
    "close_cause",
    "outcome_summary",
];

/// A need OpenCase stores, with its timeline line.
pub struct NeedToOpen<'a> {
    pub need_id: Uuid,
    pub need: &'a PlannedNeed,
    pub summary: String,
}

/// Separates the codes of one need in the one text per need that
/// [`insert_opened_case`] binds (an array of arrays cannot be unnested row
/// by row); no country or HS code holds it.
const CODE_SEPARATOR: char = '\u{1f}';

/// The case as it was opened, and the needs stored with it (id, opened at)
/// in their order.
pub struct OpenedCase {
    pub case: pb::Case,
    pub needs: Vec<(Uuid, DateTime<Utc>)>,
}

/// Writes an OPEN case, its needs and their timeline lines in one
/// statement, and answers with the case as stored. The mentoring need the
/// rule adds is stored only if the company has no open mentoring need when
/// the statement runs: the caller holds the company's row lock, so two
/// cases opened at once for one company agree (the statement's snapshot is
/// taken after the lock was granted).
pub async fn insert_opened_case(
    conn: &mut PgConnection,
    case_id: Uuid,
    company_id: Uuid,
    needs: &[NeedToOpen<'_>],
    case_kind: &str,
    need_kind: &str,
    service: &str,
) -> Result<OpenedCase, sqlx::Error> {
    let joined = |codes: Vec<&str>| codes.join(&CODE_SEPARATOR.to_string());
    let mut ids = Vec::with_capacity(needs.len());
    let mut positions = Vec::with_capacity(needs.len());
    let mut categories = Vec::with_capacity(needs.len());
    let mut owners = Vec::with_capacity(needs.len());
    let mut details = Vec::with_capacity(needs.len());
    let mut markets = Vec::with_capacity(needs.len());
    let mut hs_codes = Vec::with_capacity(needs.len());
    let mut by_rule = Vec::with_capacity(needs.len());
    let mut programs = Vec::with_capacity(needs.len());
    let mut summaries = Vec::with_capacity(needs.len());
    let mut if_no_mentoring = Vec::with_capacity(needs.len());
    for (position, to_open) in needs.iter().enumerate() {
        let need = to_open.need;
        ids.push(to_open.need_id);
        positions.push(position as i32);
        categories.push(need.spec.category.as_str());
        owners.push(need.owner.as_str());
        details.push(need.spec.detail.as_str());
        markets.push(joined(
            need.spec
                .target_markets
                .iter()
                .map(|c| c.as_str())
                .collect(),
        ));
        hs_codes.push(joined(
            need.spec.hs_codes.iter().map(|c| c.as_str()).collect(),
        ));
        by_rule.push(need.added_by_rule);
        programs.push(need.spec.program_id.as_str());
        summaries.push(to_open.summary.as_str());
        if_no_mentoring.push(need.added_by_rule && need.spec.category == NeedCategory::Mentoring);
    }
    let rows = sqlx::query(&format!(
        "WITH mentoring_open AS (
             -- Walks the company's cases and probes each for an open
             -- mentoring need: a LATERAL with LIMIT cannot be turned into a
             -- join over every open mentoring need of every company, which a
             -- cached generic plan or stale statistics otherwise choose, and
             -- which grows with the whole service's open needs while the
             -- company's row is locked.
             SELECT EXISTS (
                 SELECT 1 FROM support_case c
                  CROSS JOIN LATERAL (
                      SELECT 1 FROM need n
                       WHERE n.case_id = c.id AND n.category = 'MENTORING'
                         AND n.status NOT IN ('DONE', 'CANCELLED')
                       LIMIT 1) open_mentoring
                  WHERE c.company_id = $2) AS present),
         planned AS (
             SELECT p.*
               FROM unnest($5::uuid[], $6::integer[], $7::text[], $8::text[], $9::text[],
                           $10::text[], $11::text[], $12::boolean[], $13::text[], $14::text[],
                           $15::boolean[])
                    AS p(id, position, category, owner, detail, markets, hs_codes, added_by_rule,
                         program_id, summary, if_no_mentoring)
              WHERE NOT p.if_no_mentoring OR NOT (SELECT present FROM mentoring_open)),
         opened_case AS (
             INSERT INTO support_case (id, company_id, status) VALUES ($1, $2, $3)
             RETURNING id, company_id, status, opened_at, closed_at, close_cause, outcome_summary),
         opened_needs AS (
             INSERT INTO need (id, case_id, position, category, owner, detail, target_markets,
                               hs_codes, status, added_by_rule, delivery, program_id)
             SELECT id, $1, position, category, owner, detail, string_to_array(markets, chr(31)),
                    string_to_array(hs_codes, chr(31)), $4, added_by_rule, 'PENDING', program_id
               FROM planned ORDER BY position
             RETURNING {NEED_COLUMNS}),
         lines AS (
             INSERT INTO case_timeline (case_id, need_id, service, kind, summary)
             SELECT $1, need_id, $16, kind, summary
               FROM (SELECT -1 AS position, NULL::uuid AS need_id, $17 AS kind,
                            format('Case opened with %s need(s)',
                                   (SELECT count(*) FROM planned)) AS summary
                     UNION ALL
                     SELECT position, id, $18, summary FROM planned) line
              ORDER BY position)
         SELECT c.id AS case_row_id, c.company_id AS case_company_id,
                c.status AS case_status, c.opened_at AS case_opened_at,
                c.closed_at AS case_closed_at, c.close_cause, c.outcome_summary, n.*
           FROM opened_case c LEFT JOIN opened_needs n ON true
          ORDER BY n.position"
    ))
    .bind(case_id)
    .bind(company_id)
    .bind(CaseStatus::Open.as_str())
    .bind(NeedStatus::Open.as_str())
    .bind(ids)
    .bind(positions)
    .bind(categories)
    .bind(owners)
    .bind(details)
    .bind(markets)
    .bind(hs_codes)
    .bind(by_rule)
    .bind(programs)
    .bind(summaries)
    .bind(if_no_mentoring)
    .bind(service)
    .bind(case_kind)
    .bind(need_kind)
    .fetch_all(conn)
    .await?;
    let first = rows
        .first()
        .ok_or_else(|| sqlx::Error::Protocol("an inserted case came back empty".into()))?;
    let mut shown = ShownNeeds::default();
    let mut stored = Vec::with_capacity(rows.len());
    for row in rows
        .iter()
        .filter(|row| row.get::<Option<Uuid>, _>("id").is_some())
    {
        stored.push((row.get("id"), row.get("opened_at")));
        if shown.needs.len() == NEEDS_SHOWN_ON_CASE as usize {
            if shown.next_page_token.is_empty() {
                let last_position: i32 = rows[shown.needs.len() - 1].get("position");
                shown.next_page_token = encode_token(&last_position);
            }
        } else {
            shown.needs.push(need(row));
        }
    }
    let case = case_from_row(first, &OPENED_CASE_COLUMNS, shown);
    Ok(OpenedCase {
        case,
        needs: stored,
    })
}
