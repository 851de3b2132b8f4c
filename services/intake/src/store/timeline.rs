//! The case timeline: every step of a case in every service, as the
//! company reads it.

use chrono::{DateTime, Utc};
use onestop_contracts::intake::v1 as pb;
use onestop_platform::pagination::Page;
use onestop_platform::time::to_timestamp;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::domain::partner::{Partner, PartnerRole};

/// A line to add to a case's timeline.
#[derive(Debug)]
pub struct NewEntry<'a> {
    pub case_id: Uuid,
    /// None when the line concerns the whole case.
    pub need_id: Option<Uuid>,
    /// The service whose step it is.
    pub service: &'a str,
    /// The event type behind it.
    pub kind: &'a str,
    pub summary: &'a str,
    /// When the step happened; None for now.
    pub at: Option<DateTime<Utc>>,
    /// The owner's event behind the line (its fingerprint), so that reading
    /// the owner's feed again adds it only once; None for intake's own.
    pub source_event: Option<&'a str>,
    /// Set for a line only this agency may read among agencies (a
    /// decline or an SLA breach of its own leg).
    pub agency_only: Option<&'a str>,
}

/// Adds the line unless it is there already; true when added.
pub async fn add_timeline_entry(
    conn: &mut PgConnection,
    entry: &NewEntry<'_>,
) -> Result<bool, sqlx::Error> {
    let added = sqlx::query(
        "INSERT INTO case_timeline (case_id, need_id, service, kind, summary, at, source_event,
                                    agency_only)
         VALUES ($1, $2, $3, $4, $5, COALESCE($6, now()), $7, $8)
         ON CONFLICT (service, source_event) WHERE source_event IS NOT NULL DO NOTHING",
    )
    .bind(entry.case_id)
    .bind(entry.need_id)
    .bind(entry.service)
    .bind(entry.kind)
    .bind(entry.summary)
    .bind(entry.at)
    .bind(entry.source_event)
    .bind(entry.agency_only)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(added > 0)
}

/// Oldest first, each line with its page key: when it happened, then the
/// order intake learned of it. A `partner` reads no line kept for one
/// agency unless it is that agency.
pub async fn timeline(
    conn: &mut PgConnection,
    case_id: Uuid,
    partner: Option<&Partner>,
    page: &Page<(DateTime<Utc>, i64)>,
) -> Result<Vec<((DateTime<Utc>, i64), pb::TimelineEntry)>, sqlx::Error> {
    let (after_at, after_id) = page.after.unzip();
    let own_agency = partner
        .filter(|p| p.role == PartnerRole::Agency)
        .map(|p| p.tenant.as_str());
    let rows = sqlx::query(
        "SELECT id, at, service, kind, need_id, summary FROM case_timeline
          WHERE case_id = $1 AND ($2::timestamptz IS NULL OR (at, id) > ($2, $3))
            AND (agency_only IS NULL OR NOT $5 OR agency_only = $6)
          ORDER BY at, id
          LIMIT $4",
    )
    .bind(case_id)
    .bind(after_at)
    .bind(after_id)
    .bind(page.fetch_limit())
    .bind(partner.is_some())
    .bind(own_agency)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let at: DateTime<Utc> = row.get("at");
            let entry = pb::TimelineEntry {
                at: Some(to_timestamp(at)),
                service: row.get("service"),
                kind: row.get("kind"),
                need_id: row
                    .get::<Option<Uuid>, _>("need_id")
                    .map(|id| id.to_string())
                    .unwrap_or_default(),
                summary: row.get("summary"),
            };
            ((at, row.get("id")), entry)
        })
        .collect())
}
