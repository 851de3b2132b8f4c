//! Where intake stands on each owner's event feed: the id of the last event
//! it applied and the feed epoch that id belongs to.

use sqlx::PgConnection;

/// A stored position on an owner's feed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedCursor {
    pub last_event_id: i64,
    /// The feed's epoch the id was read in; empty before intake has heard
    /// one (a cursor stored before feeds had epochs, or none yet).
    pub epoch: String,
}

pub async fn feed_cursor(conn: &mut PgConnection, source: &str) -> Result<FeedCursor, sqlx::Error> {
    let row: Option<(i64, String)> =
        sqlx::query_as("SELECT last_event_id, epoch FROM feed_cursor WHERE source = $1")
            .bind(source)
            .fetch_optional(conn)
            .await?;
    Ok(row
        .map(|(last_event_id, epoch)| FeedCursor {
            last_event_id,
            epoch,
        })
        .unwrap_or_default())
}

/// The cursor, created at the start if absent, locked until the
/// transaction ends so that replicas following the same feed apply each
/// event once.
pub async fn lock_feed_cursor(
    conn: &mut PgConnection,
    source: &str,
) -> Result<FeedCursor, sqlx::Error> {
    sqlx::query(
        "INSERT INTO feed_cursor (source, last_event_id) VALUES ($1, 0) ON CONFLICT DO NOTHING",
    )
    .bind(source)
    .execute(&mut *conn)
    .await?;
    let (last_event_id, epoch): (i64, String) =
        sqlx::query_as("SELECT last_event_id, epoch FROM feed_cursor WHERE source = $1 FOR UPDATE")
            .bind(source)
            .fetch_one(conn)
            .await?;
    Ok(FeedCursor {
        last_event_id,
        epoch,
    })
}

pub async fn save_feed_cursor(
    conn: &mut PgConnection,
    source: &str,
    cursor: &FeedCursor,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE feed_cursor SET last_event_id = $2, epoch = $3 WHERE source = $1")
        .bind(source)
        .bind(cursor.last_event_id)
        .bind(&cursor.epoch)
        .execute(conn)
        .await?;
    Ok(())
}

/// Sets the cursor back to the start of the feed, of no epoch yet, unless
/// it moved on from `seen` meanwhile (another replica got there first);
/// true when it was reset.
pub async fn restart_feed_cursor(
    conn: &mut PgConnection,
    source: &str,
    seen: &FeedCursor,
) -> Result<bool, sqlx::Error> {
    let reset = sqlx::query(
        "UPDATE feed_cursor SET last_event_id = 0, epoch = ''
          WHERE source = $1 AND last_event_id = $2 AND epoch = $3",
    )
    .bind(source)
    .bind(seen.last_event_id)
    .bind(&seen.epoch)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(reset > 0)
}
