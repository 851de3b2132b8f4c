//! The relay's bookkeeping: which need is due for delivery, what each
//! attempt left on it, and the hand-off the need was announced with.

use chrono::{DateTime, Utc};
use onestop_contracts::common::v1::NeedHandOff;
use onestop_contracts::event_types::{EventType, IntakeEvent};
use onestop_contracts::intake::v1 as pb;
use onestop_domain::NeedOwner;
use onestop_platform::events::{Appending, announce_appended};
use prost::Message;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use crate::domain::case::NeedStatus;

/// A need due for delivery, claimed by one relay.
#[derive(Debug)]
pub struct DueNeed {
    pub need_id: Uuid,
    pub case_id: Uuid,
    pub owner: NeedOwner,
    /// The number of this attempt, from 1.
    pub attempt: i32,
    /// What the company wrote about the need: sent to the owner, never on
    /// the feed (the announced hand-off leaves it out).
    pub detail: String,
    /// The need as its `need.opened` event announced it; None once
    /// retention has pruned the event.
    pub announced: Option<AnnouncedNeed>,
}

/// Claims the need of `owner` due longest, by pushing its due time `lease`
/// ahead, and commits at once: no row lock is held while the owner is
/// called, and no other relay takes the need until the lease runs out
/// (which it only does when this relay died mid-call: every call's
/// deadline is shorter). The claim's due time doubles as the lease.
pub async fn claim_due_need(
    pool: &PgPool,
    now: DateTime<Utc>,
    owner: NeedOwner,
    lease: chrono::Duration,
) -> Result<Option<DueNeed>, sqlx::Error> {
    let opened = IntakeEvent::NeedOpened;
    let Some(row) = sqlx::query(
        "WITH claimed AS (
             UPDATE need SET next_delivery_at = $3
              WHERE id = (SELECT n.id FROM need n
                           WHERE n.delivery = 'PENDING' AND n.next_delivery_at <= $1
                             AND n.owner = $2
                             -- One case's needs reach their owner in the order
                             -- they were opened, one at a time, however many
                             -- lanes send.
                             AND NOT EXISTS (
                                 SELECT 1 FROM need earlier
                                  WHERE earlier.case_id = n.case_id AND earlier.owner = n.owner
                                    AND earlier.position < n.position
                                    AND earlier.delivery = 'PENDING')
                           ORDER BY n.next_delivery_at
                           LIMIT 1
                           FOR UPDATE OF n SKIP LOCKED)
              RETURNING id, case_id, delivery_attempts, detail)
         -- The case's announcements come with the claim: the hand-off is
         -- sent as `need.opened` announced it.
         SELECT c.*, o.payloads, o.traceparents, o.tracestates
           FROM claimed c
           LEFT JOIN LATERAL (
                SELECT array_agg(e.payload ORDER BY e.id) AS payloads,
                       array_agg(e.traceparent ORDER BY e.id) AS traceparents,
                       array_agg(e.tracestate ORDER BY e.id) AS tracestates
                  FROM event_log e
                 WHERE e.aggregate_type = $4 AND e.aggregate_id = c.case_id::text
                   AND e.event_type = $5) o ON true",
    )
    .bind(now)
    .bind(owner.as_str())
    .bind(now + lease)
    .bind(EventType::aggregate_type(opened))
    .bind(opened.name())
    .fetch_optional(pool)
    .await?
    else {
        return Ok(None);
    };
    let need_id: Uuid = row.get("id");
    let detail: String = row.get("detail");
    let announced = announced_among(
        need_id,
        row.get::<Option<Vec<Vec<u8>>>, _>("payloads")
            .unwrap_or_default(),
        row.get::<Option<Vec<String>>, _>("traceparents")
            .unwrap_or_default(),
        row.get::<Option<Vec<String>>, _>("tracestates")
            .unwrap_or_default(),
    )?
    .map(|mut announced| {
        announced.hand_off.detail = detail.clone();
        announced
    });
    Ok(Some(DueNeed {
        need_id,
        case_id: row.get("case_id"),
        owner,
        attempt: row.get::<i32, _>("delivery_attempts").saturating_add(1),
        detail,
        announced,
    }))
}

/// Records a failed attempt and when to try again; the need stays pending,
/// or is parked (`park`) and no longer tried. False when the need is no
/// longer pending (another relay finished it after this one's lease ran
/// out).
pub async fn record_failed_attempt(
    conn: &mut PgConnection,
    need: &DueNeed,
    error: &str,
    next_attempt_at: DateTime<Utc>,
    park: bool,
) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query(
        "UPDATE need SET delivery_attempts = $2, last_delivery_error = $3, next_delivery_at = $4,
                delivery = CASE WHEN $5 THEN 'PARKED' ELSE delivery END
          WHERE id = $1 AND delivery = 'PENDING'",
    )
    .bind(need.need_id)
    .bind(need.attempt)
    .bind(error)
    .bind(next_attempt_at)
    .bind(park)
    .execute(conn)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// The timeline line a delivery writes: whose step it is, its event type
/// and what it says.
#[derive(Debug)]
pub struct DeliveryLine<'a> {
    pub service: &'a str,
    pub kind: &'a str,
    pub summary: &'a str,
}

/// Records the owner's acknowledgement: the need is delivered, ROUTED if
/// nothing moved it further yet, and names the owner's record for it; the
/// case's timeline gets `line` and the feed `delivered` (naming, beside
/// the partners it names, every partner of the case's company), all in
/// one statement, which commits by itself when `conn` is in no
/// transaction. False when it was already delivered (another relay, after
/// this one's lease ran out): nothing is written.
pub async fn mark_delivered(
    conn: &mut PgConnection,
    need: &DueNeed,
    owner_record_id: &str,
    now: DateTime<Utc>,
    line: &DeliveryLine<'_>,
    delivered: Appending,
) -> Result<bool, sqlx::Error> {
    let sql = format!(
        "WITH marked AS (
             UPDATE need SET delivery = 'DELIVERED', delivery_attempts = $2,
                    last_delivery_error = '', delivered_at = $3, owner_record_id = $4,
                    status = CASE WHEN status = $5 THEN $6 ELSE status END
              WHERE id = $1 AND delivery <> 'DELIVERED'
              RETURNING id, case_id),
         line AS (
             INSERT INTO case_timeline (case_id, need_id, service, kind, summary)
             SELECT case_id, id, $7, $8, $9 FROM marked),
         {append}
         SELECT count(*), current_database() FROM marked",
        append = Appending::insert_sql(
            11,
            "EXISTS (SELECT 1 FROM marked)",
            &super::relationships::case_partner_keys_sql("$10"),
        ),
    );
    let query = sqlx::query_as(&sql)
        .bind(need.need_id)
        .bind(need.attempt)
        .bind(now)
        .bind(owner_record_id)
        .bind(NeedStatus::Open.as_str())
        .bind(NeedStatus::Routed.as_str())
        .bind(line.service)
        .bind(line.kind)
        .bind(line.summary)
        .bind(need.case_id);
    let (marked, database): (i64, String) = delivered.bind_to(query).fetch_one(conn).await?;
    if marked == 1 {
        announce_appended(&database);
    }
    Ok(marked == 1)
}

/// A need as its `need.opened` event announced it, with the trace of the
/// request that opened it.
#[derive(Debug)]
pub struct AnnouncedNeed {
    pub hand_off: NeedHandOff,
    pub traceparent: String,
    pub tracestate: String,
}

/// The hand-off `need_id` was announced with, among the case's
/// `need.opened` events (their payloads and trace contexts, oldest first).
fn announced_among(
    need_id: Uuid,
    payloads: Vec<Vec<u8>>,
    traceparents: Vec<String>,
    tracestates: Vec<String>,
) -> Result<Option<AnnouncedNeed>, sqlx::Error> {
    let wanted = need_id.to_string();
    let events = payloads.into_iter().zip(traceparents).zip(tracestates);
    for ((payload, traceparent), tracestate) in events {
        let payload = pb::NeedOpened::decode(payload.as_slice())
            .map_err(|error| sqlx::Error::Decode(Box::new(error)))?;
        if let Some(hand_off) = payload.hand_off.filter(|h| h.need_id == wanted) {
            return Ok(Some(AnnouncedNeed {
                hand_off,
                traceparent,
                tracestate,
            }));
        }
    }
    Ok(None)
}

/// A need's delivery as an administrator's retry sees it, locked.
#[derive(Debug)]
pub struct ParkedNeed {
    pub owner: NeedOwner,
    pub status: NeedStatus,
    /// Whether delivery is PARKED.
    pub parked: bool,
    pub attempts: i32,
}

/// The case's need, locked for a retry; None when the case has no such
/// need.
pub async fn lock_delivery(
    conn: &mut PgConnection,
    case_id: Uuid,
    need_id: Uuid,
) -> Result<Option<ParkedNeed>, sqlx::Error> {
    let Some(row) = sqlx::query(
        "SELECT owner, status, delivery, delivery_attempts FROM need
          WHERE id = $1 AND case_id = $2 FOR UPDATE",
    )
    .bind(need_id)
    .bind(case_id)
    .fetch_optional(conn)
    .await?
    else {
        return Ok(None);
    };
    let unknown =
        |what: &str| sqlx::Error::Decode(format!("need {need_id} has an unknown {what}").into());
    Ok(Some(ParkedNeed {
        owner: NeedOwner::from_stored(row.get("owner")).ok_or_else(|| unknown("owner"))?,
        status: NeedStatus::from_stored(row.get("status")).ok_or_else(|| unknown("status"))?,
        parked: row.get::<&str, _>("delivery") == "PARKED",
        attempts: row.get("delivery_attempts"),
    }))
}

/// Puts a parked need back in line: pending, due now, its attempts
/// counted from zero so that it is parked again only after as many
/// refusals as the first time. The owner's last reason stays on it until
/// the next attempt.
pub async fn unpark(conn: &mut PgConnection, need_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE need SET delivery = 'PENDING', delivery_attempts = 0, next_delivery_at = now()
          WHERE id = $1 AND delivery = 'PARKED'",
    )
    .bind(need_id)
    .execute(conn)
    .await?;
    Ok(())
}
