//! Logged sessions, which also reset the assignment's contact clock.

use chrono::{DateTime, Utc};
use onestop_contracts::mentoring::v1 as pb;
use onestop_platform::pagination::Page;
use onestop_platform::time::to_timestamp;
use prost::Message;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::domain::session::{Channel, SessionFilter, SessionLog};

pub async fn insert_session(
    conn: &mut PgConnection,
    id: Uuid,
    assignment_id: Uuid,
    log: &SessionLog,
    now: DateTime<Utc>,
    logged_by: &str,
) -> Result<(), sqlx::Error> {
    let actions: Vec<u8> = log
        .follow_up_actions
        .iter()
        .flat_map(|action| action.encode_length_delimited_to_vec())
        .collect();
    sqlx::query(
        "INSERT INTO session (id, assignment_id, company_id, advisor_id, held_at, channel, minutes,
             topics, follow_up_actions, interpreter_language, logged_at, logged_by)
         SELECT $1, id, company_id, advisor_id, $3, $4, $5, $6, $7, $8, $9, $10
           FROM assignment WHERE id = $2",
    )
    .bind(id)
    .bind(assignment_id)
    .bind(log.held_at)
    .bind(log.channel.as_str())
    .bind(log.minutes as i32)
    .bind(&log.topics)
    .bind(actions)
    .bind(&log.interpreter_language)
    .bind(now)
    .bind(logged_by)
    .execute(&mut *conn)
    .await?;
    // A session logged late never moves the last contact backwards.
    sqlx::query(
        "UPDATE assignment
            SET last_contact_at = GREATEST(coalesce(last_contact_at, $2), $2),
                overdue_periods_raised = 0
          WHERE id = $1",
    )
    .bind(assignment_id)
    .bind(log.held_at)
    .execute(conn)
    .await?;
    Ok(())
}

fn decode_actions(bytes: &[u8]) -> Vec<pb::ActionItem> {
    let mut buf = bytes;
    let mut actions = Vec::new();
    while !buf.is_empty() {
        match pb::ActionItem::decode_length_delimited(&mut buf) {
            Ok(action) => actions.push(action),
            Err(_) => break,
        }
    }
    actions
}

fn session_from_row(row: &sqlx::postgres::PgRow) -> pb::Session {
    pb::Session {
        session_id: row.get::<Uuid, _>("id").to_string(),
        assignment_id: row.get::<Uuid, _>("assignment_id").to_string(),
        company_id: row.get::<Uuid, _>("company_id").to_string(),
        advisor_id: row.get::<Uuid, _>("advisor_id").to_string(),
        held_at: Some(to_timestamp(row.get("held_at"))),
        channel: Channel::proto_from_stored(row.get("channel")),
        minutes: row.get::<i32, _>("minutes").max(0) as u32,
        topics: row.get("topics"),
        follow_up_actions: decode_actions(row.get("follow_up_actions")),
        interpreter_language: row.get("interpreter_language"),
        logged_at: Some(to_timestamp(row.get("logged_at"))),
        logged_by: row.get("logged_by"),
    }
}

const SESSION_COLUMNS: &str = "id, assignment_id, company_id, advisor_id, held_at, channel, minutes, \
     topics, follow_up_actions, interpreter_language, logged_at, logged_by";

pub async fn load_session(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<pb::Session>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {SESSION_COLUMNS} FROM session WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(row.as_ref().map(session_from_row))
}

/// Newest first.
pub async fn list_sessions(
    conn: &mut PgConnection,
    filter: &SessionFilter,
    page: &Page<(DateTime<Utc>, Uuid)>,
) -> Result<Vec<((DateTime<Utc>, Uuid), pb::Session)>, sqlx::Error> {
    let (held_at, id) = page.after.unzip();
    let rows = sqlx::query(&format!(
        "SELECT {SESSION_COLUMNS} FROM session
          WHERE ($1::uuid IS NULL OR assignment_id = $1)
            AND ($2::uuid IS NULL OR company_id = $2)
            AND ($3::uuid IS NULL OR advisor_id = $3)
            AND ($4::timestamptz IS NULL OR held_at >= $4)
            AND ($5::timestamptz IS NULL OR held_at <= $5)
            AND ($6::timestamptz IS NULL OR (held_at, id) < ($6, $7))
          ORDER BY held_at DESC, id DESC
          LIMIT $8"
    ))
    .bind(filter.assignment_id)
    .bind(filter.company_id)
    .bind(filter.advisor_id)
    .bind(filter.held_from)
    .bind(filter.held_to)
    .bind(held_at)
    .bind(id)
    .bind(page.fetch_limit())
    .fetch_all(conn)
    .await?;
    Ok(rows
        .iter()
        .map(|row| ((row.get("held_at"), row.get("id")), session_from_row(row)))
        .collect())
}
