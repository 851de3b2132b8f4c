//! The cursor of each feed: which epoch of the feed it belongs to, the last
//! event applied, and the head the feed last reported.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

use crate::domain::source::Source;

/// Channel on which an applying transaction tells every replica's watchers
/// that the figures changed (delivered at commit).
pub const CHANGED_CHANNEL: &str = "insights_changed";

/// The tables each source's facts land in: what a rebuild of that source
/// starts by emptying.
fn tables_of(source: Source) -> &'static [&'static str] {
    match source {
        Source::Intake => &["company", "support_case", "need"],
        Source::Mentoring => &["advisor", "assignment", "waitlist_entry", "fee_charge"],
        Source::Buyers => &["buyer", "vetting_decision", "consultation", "deal"],
        Source::Referral => &["referral_leg"],
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FeedPosition {
    /// Empty until the feed's first status was recorded.
    pub epoch: String,
    pub applied: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FeedRow {
    pub source: String,
    pub epoch: String,
    pub last_event_id: i64,
    pub head: i64,
    pub updated_at: DateTime<Utc>,
}

pub async fn position(pool: &PgPool, source: Source) -> Result<FeedPosition, sqlx::Error> {
    let row: Option<(String, i64)> =
        sqlx::query_as("SELECT epoch, last_event_id FROM feed_cursor WHERE source = $1")
            .bind(source.as_str())
            .fetch_optional(pool)
            .await?;
    Ok(row
        .map(|(epoch, applied)| FeedPosition { epoch, applied })
        .unwrap_or_default())
}

/// Locks the source's cursor row for the rest of the transaction (creating
/// it first), so one replica at a time applies that feed's events.
pub async fn lock_cursor(
    conn: &mut PgConnection,
    source: Source,
) -> Result<FeedPosition, sqlx::Error> {
    sqlx::query("INSERT INTO feed_cursor (source) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(source.as_str())
        .execute(&mut *conn)
        .await?;
    let (epoch, applied): (String, i64) =
        sqlx::query_as("SELECT epoch, last_event_id FROM feed_cursor WHERE source = $1 FOR UPDATE")
            .bind(source.as_str())
            .fetch_one(&mut *conn)
            .await?;
    Ok(FeedPosition { epoch, applied })
}

/// Records how far the feed has been applied, and in which epoch.
pub async fn advance_cursor(
    conn: &mut PgConnection,
    source: Source,
    epoch: &str,
    applied: i64,
    head: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE feed_cursor
            SET epoch = $2, last_event_id = $3, head = GREATEST(head, $4, $3), updated_at = now()
          WHERE source = $1",
    )
    .bind(source.as_str())
    .bind(epoch)
    .bind(applied)
    .bind(head)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The head a heartbeat reported, while the cursor is still in `epoch`.
pub async fn record_head(
    pool: &PgPool,
    source: Source,
    epoch: &str,
    head: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE feed_cursor SET head = GREATEST(head, $3), updated_at = now()
          WHERE source = $1 AND epoch = $2",
    )
    .bind(source.as_str())
    .bind(epoch)
    .bind(head)
    .execute(pool)
    .await?;
    Ok(())
}

/// Forgets everything learnt from `source` and rewinds its cursor to the
/// start, in one transaction: its feed is read again from 0.
pub async fn reset_source(pool: &PgPool, source: Source) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    lock_cursor(&mut tx, source).await?;
    for table in tables_of(source) {
        sqlx::query(&format!("DELETE FROM {table}"))
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query("DELETE FROM ticker WHERE source = $1")
        .bind(source.as_str())
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE feed_cursor SET epoch = '', last_event_id = 0, head = 0, updated_at = now()
          WHERE source = $1",
    )
    .bind(source.as_str())
    .execute(&mut *tx)
    .await?;
    notify_changed(&mut tx).await?;
    tx.commit().await
}

/// Wakes every replica's watchers once this transaction commits.
pub async fn notify_changed(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(CHANGED_CHANNEL)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// A number that moves whenever any feed's cursor does: what watchers poll
/// when a notification may have been lost.
pub async fn change_mark(pool: &PgPool) -> Result<(i64, i64), sqlx::Error> {
    sqlx::query_as(
        "SELECT coalesce(sum(last_event_id), 0)::bigint, count(*) FILTER (WHERE epoch = '')
           FROM feed_cursor",
    )
    .fetch_one(pool)
    .await
}

pub async fn feed_rows(pool: &PgPool) -> Result<Vec<FeedRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT source, epoch, last_event_id, head, updated_at FROM feed_cursor ORDER BY source",
    )
    .fetch_all(pool)
    .await
}
