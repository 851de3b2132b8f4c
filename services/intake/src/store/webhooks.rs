//! Partners' webhook endpoints, each one's cursor on every feed it is
//! delivered from, and its delivery log.

use chrono::{DateTime, Utc};
use onestop_contracts::intake::v1 as pb;
use onestop_platform::pagination::Page;
use onestop_platform::time::to_timestamp;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use crate::domain::partner::{Partner, PartnerRole};
use crate::webhooks::{DELIVERY_LOG, DisableCause, Endpoint, State};

/// With, for a failing enabled endpoint, when its next attempt is due: a
/// worker waiting to retry holds its cursor's lease until then, and a
/// cursor is waiting when its feed's latest attempt failed.
const ENDPOINT_COLUMNS: &str = "webhook_id, partner_role, partner_tenant, url, event_types, secret,
    previous_secret, previous_secret_until, state, disabled_cause, failures_in_a_row,
    failing_since, created_at,
    CASE WHEN state = 'ENABLED' AND failures_in_a_row > 0 THEN (
        SELECT min(cursor.leased_until) FROM webhook_cursor cursor
         WHERE cursor.webhook_id = webhook_endpoint.webhook_id
           AND (SELECT latest.error FROM webhook_delivery latest
                 WHERE latest.webhook_id = cursor.webhook_id AND latest.source = cursor.source
                 ORDER BY latest.delivery_id DESC LIMIT 1) <> ''
    ) END AS next_attempt_at";

fn endpoint_from_row(row: &PgRow) -> Endpoint {
    let role: String = row.get("partner_role");
    Endpoint {
        id: row.get("webhook_id"),
        partner: Partner {
            role: PartnerRole::from_stored(&role).unwrap_or(PartnerRole::Agency),
            tenant: row.get("partner_tenant"),
        },
        url: row.get("url"),
        event_types: row.get("event_types"),
        secret: row.get("secret"),
        previous_secret: row.get("previous_secret"),
        previous_secret_until: row.get("previous_secret_until"),
        state: State::from_stored(row.get("state")),
        disabled_cause: row.get("disabled_cause"),
        failures_in_a_row: row.get("failures_in_a_row"),
        failing_since: row.get("failing_since"),
        created_at: row.get("created_at"),
        next_attempt_at: row.get("next_attempt_at"),
    }
}

pub async fn insert_webhook(conn: &mut PgConnection, endpoint: &Endpoint) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO webhook_endpoint
             (webhook_id, partner_role, partner_tenant, url, event_types, secret, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(endpoint.id)
    .bind(endpoint.partner.role.as_str())
    .bind(&endpoint.partner.tenant)
    .bind(&endpoint.url)
    .bind(&endpoint.event_types)
    .bind(&endpoint.secret)
    .bind(endpoint.created_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Endpoints `partner` holds, to bound them.
pub async fn count_webhooks(conn: &mut PgConnection, partner: &Partner) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT count(*) FROM webhook_endpoint WHERE partner_role = $1 AND partner_tenant = $2",
    )
    .bind(partner.role.as_str())
    .bind(&partner.tenant)
    .fetch_one(conn)
    .await
}

/// The endpoint, locked until the transaction ends when `lock`.
pub async fn load_webhook(
    conn: &mut PgConnection,
    id: Uuid,
    lock: bool,
) -> sqlx::Result<Option<Endpoint>> {
    let row = sqlx::query(&format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoint WHERE webhook_id = $1 {}",
        if lock { "FOR UPDATE" } else { "" }
    ))
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(row.as_ref().map(endpoint_from_row))
}

/// One page of endpoints, oldest first: `partner`'s, or everyone's.
pub async fn list_webhooks(
    conn: &mut PgConnection,
    partner: Option<&Partner>,
    page: &Page<(DateTime<Utc>, Uuid)>,
) -> sqlx::Result<Vec<Endpoint>> {
    let (after_at, after_id) = page.after.unzip();
    let rows = sqlx::query(&format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoint
          WHERE ($1::text IS NULL OR (partner_role = $1 AND partner_tenant = $2))
            AND ($3::timestamptz IS NULL OR (created_at, webhook_id) > ($3, $4))
          ORDER BY created_at, webhook_id
          LIMIT $5"
    ))
    .bind(partner.map(|p| p.role.as_str()))
    .bind(partner.map(|p| p.tenant.clone()))
    .bind(after_at)
    .bind(after_id)
    .bind(page.fetch_limit())
    .fetch_all(conn)
    .await?;
    Ok(rows.iter().map(endpoint_from_row).collect())
}

/// Ids of the endpoints that receive deliveries.
pub async fn enabled_webhooks(pool: &PgPool) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar("SELECT webhook_id FROM webhook_endpoint WHERE state = 'ENABLED'")
        .fetch_all(pool)
        .await
}

pub async fn rotate_secret(
    conn: &mut PgConnection,
    id: Uuid,
    secret: &str,
    previous_until: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE webhook_endpoint
            SET previous_secret = secret, previous_secret_until = $3, secret = $2
          WHERE webhook_id = $1",
    )
    .bind(id)
    .bind(secret)
    .bind(previous_until)
    .execute(conn)
    .await?;
    Ok(())
}

/// Disables the endpoint for `cause`.
pub async fn disable_webhook(
    conn: &mut PgConnection,
    id: Uuid,
    cause: DisableCause,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE webhook_endpoint SET state = 'DISABLED', disabled_cause = $2 WHERE webhook_id = $1",
    )
    .bind(id)
    .bind(cause.as_str())
    .execute(conn)
    .await?;
    Ok(())
}

/// Enables the endpoint with its failure run cleared.
pub async fn enable_webhook(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE webhook_endpoint
            SET state = 'ENABLED', disabled_cause = '', failures_in_a_row = 0, failing_since = NULL
          WHERE webhook_id = $1",
    )
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Removes the endpoint; its cursors and delivery log go with it.
pub async fn delete_webhook(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM webhook_endpoint WHERE webhook_id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Counts a failed attempt; the failures in a row and since when.
pub async fn note_failure(
    conn: &mut PgConnection,
    id: Uuid,
) -> sqlx::Result<Option<(i32, DateTime<Utc>)>> {
    sqlx::query_as(
        "UPDATE webhook_endpoint
            SET failures_in_a_row = failures_in_a_row + 1,
                failing_since = COALESCE(failing_since, now())
          WHERE webhook_id = $1
        RETURNING failures_in_a_row, failing_since",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Ends the failure run after a 2xx.
pub async fn note_success(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE webhook_endpoint SET failures_in_a_row = 0, failing_since = NULL
          WHERE webhook_id = $1 AND failures_in_a_row > 0",
    )
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// One delivery attempt, as the log keeps it.
pub struct Attempt<'a> {
    pub webhook_id: Uuid,
    pub source: &'a str,
    pub event_id: i64,
    pub event_type: &'a str,
    pub message_id: &'a str,
    pub status_code: i32,
    pub error: &'a str,
    pub duration_ms: i32,
}

/// Logs `attempt` and drops what falls beyond the endpoint's latest
/// [`DELIVERY_LOG`] attempts.
pub async fn log_attempt(conn: &mut PgConnection, attempt: &Attempt<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO webhook_delivery
             (webhook_id, source, event_id, event_type, message_id, status_code, error, duration_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(attempt.webhook_id)
    .bind(attempt.source)
    .bind(attempt.event_id)
    .bind(attempt.event_type)
    .bind(attempt.message_id)
    .bind(attempt.status_code)
    .bind(attempt.error)
    .bind(attempt.duration_ms)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "DELETE FROM webhook_delivery
          WHERE webhook_id = $1
            AND delivery_id <= (SELECT delivery_id FROM webhook_delivery
                                 WHERE webhook_id = $1
                                 ORDER BY delivery_id DESC OFFSET $2 LIMIT 1)",
    )
    .bind(attempt.webhook_id)
    .bind(DELIVERY_LOG)
    .execute(conn)
    .await?;
    Ok(())
}

/// One page of the endpoint's attempts, newest first.
pub async fn list_deliveries(
    conn: &mut PgConnection,
    id: Uuid,
    page: &Page<i64>,
) -> sqlx::Result<Vec<(i64, pb::WebhookDelivery)>> {
    let rows = sqlx::query(
        "SELECT delivery_id, source, event_id, event_type, message_id, status_code, error,
                duration_ms, attempted_at
           FROM webhook_delivery
          WHERE webhook_id = $1 AND ($2::bigint IS NULL OR delivery_id < $2)
          ORDER BY delivery_id DESC
          LIMIT $3",
    )
    .bind(id)
    .bind(page.after)
    .bind(page.fetch_limit())
    .fetch_all(conn)
    .await?;
    Ok(rows
        .iter()
        .map(|row| {
            let id: i64 = row.get("delivery_id");
            let duration_ms: i32 = row.get("duration_ms");
            let at: DateTime<Utc> = row.get("attempted_at");
            (
                id,
                pb::WebhookDelivery {
                    delivery_id: id,
                    source: row.get("source"),
                    event_id: row.get("event_id"),
                    event_type: row.get("event_type"),
                    message_id: row.get("message_id"),
                    status_code: row.get("status_code"),
                    error: row.get("error"),
                    duration: prost_types::Duration::try_from(std::time::Duration::from_millis(
                        duration_ms.max(0) as u64,
                    ))
                    .ok(),
                    attempted_at: Some(to_timestamp(at)),
                },
            )
        })
        .collect())
}

/// Where an endpoint is on one feed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HookCursor {
    pub last_event_id: i64,
    pub epoch: String,
}

/// Takes (or renews) the lease on the endpoint's cursor on `source` for
/// `replica`, creating the cursor at the start of the feed; None while
/// another replica's lease runs.
pub async fn lease_cursor(
    pool: &PgPool,
    id: Uuid,
    source: &str,
    replica: Uuid,
    lease: std::time::Duration,
) -> sqlx::Result<Option<HookCursor>> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO webhook_cursor (webhook_id, source)
         SELECT $1, $2 WHERE EXISTS (SELECT 1 FROM webhook_endpoint WHERE webhook_id = $1)
         ON CONFLICT DO NOTHING",
    )
    .bind(id)
    .bind(source)
    .execute(&mut *tx)
    .await?;
    let row: Option<(i64, String)> = sqlx::query_as(
        "UPDATE webhook_cursor
            SET leased_by = $3, leased_until = now() + make_interval(secs => $4)
          WHERE webhook_id = $1 AND source = $2
            AND (leased_by IS NULL OR leased_by = $3 OR leased_until < now())
        RETURNING last_event_id, epoch",
    )
    .bind(id)
    .bind(source)
    .bind(replica)
    .bind(lease.as_secs_f64())
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(row.map(|(last_event_id, epoch)| HookCursor {
        last_event_id,
        epoch,
    }))
}

/// Moves the cursor (renewing the lease) while `replica` holds the lease;
/// false when it lost it.
pub async fn save_cursor(
    conn: &mut PgConnection,
    id: Uuid,
    source: &str,
    replica: Uuid,
    cursor: &HookCursor,
    lease: std::time::Duration,
) -> sqlx::Result<bool> {
    let moved = sqlx::query(
        "UPDATE webhook_cursor
            SET last_event_id = $4, epoch = $5,
                leased_until = now() + make_interval(secs => $6)
          WHERE webhook_id = $1 AND source = $2 AND leased_by = $3",
    )
    .bind(id)
    .bind(source)
    .bind(replica)
    .bind(cursor.last_event_id)
    .bind(&cursor.epoch)
    .bind(lease.as_secs_f64())
    .execute(conn)
    .await?
    .rows_affected();
    Ok(moved == 1)
}

/// Keeps the lease through the wait before the next attempt after a
/// failure, so no other replica tries earlier; false when `replica` lost
/// it.
pub async fn hold_cursor(
    conn: &mut PgConnection,
    id: Uuid,
    source: &str,
    replica: Uuid,
    wait: std::time::Duration,
) -> sqlx::Result<bool> {
    let held = sqlx::query(
        "UPDATE webhook_cursor SET leased_until = now() + make_interval(secs => $4)
          WHERE webhook_id = $1 AND source = $2 AND leased_by = $3",
    )
    .bind(id)
    .bind(source)
    .bind(replica)
    .bind(wait.as_secs_f64())
    .execute(conn)
    .await?
    .rows_affected();
    Ok(held == 1)
}

/// Gives the lease up, so another replica may take over at once.
pub async fn release_cursor(
    pool: &PgPool,
    id: Uuid,
    source: &str,
    replica: Uuid,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE webhook_cursor SET leased_by = NULL, leased_until = NULL
          WHERE webhook_id = $1 AND source = $2 AND leased_by = $3",
    )
    .bind(id)
    .bind(source)
    .bind(replica)
    .execute(pool)
    .await?;
    Ok(())
}
