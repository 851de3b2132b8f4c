//! Who works with whom: the company_partner rows, one per reason a partner
//! works (or worked) with a company.

use chrono::{DateTime, Utc};
use onestop_contracts::intake::v1 as pb;
use onestop_platform::pagination::Page;
use onestop_platform::time::to_timestamp;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::domain::partner::{Partner, PartnerRole, Relationship, Source, State};

/// Serialises changes to one partner's relationships with one company
/// until the transaction ends, so the before/after answer of
/// [`upsert_relationship`] is the change's own.
pub async fn lock_partner(
    conn: &mut PgConnection,
    company_id: Uuid,
    partner: &Partner,
) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(format!(
            "partner:{company_id}:{}:{}",
            partner.role.as_str(),
            partner.tenant
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// Whether `partner` works with the company now: any of its relationships
/// is not ENDED.
pub async fn works_with(
    conn: &mut PgConnection,
    company_id: Uuid,
    partner: &Partner,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM company_partner
                         WHERE company_id = $1 AND role = $2 AND tenant = $3 AND state <> 'ENDED')",
    )
    .bind(company_id)
    .bind(partner.role.as_str())
    .bind(&partner.tenant)
    .fetch_one(conn)
    .await
}

/// Records the relationship in its state (an ended one keeps its first
/// `since` and gets its `until`, a re-activated one loses its `until`);
/// returns whether the partner worked with the company just before and
/// whether it does now, as [`works_with`] would answer. One statement:
/// its reads share the write's snapshot, which is exact only under
/// [`lock_partner`], so take that first.
pub async fn upsert_relationship(
    conn: &mut PgConnection,
    relationship: &Relationship,
) -> Result<(bool, bool), sqlx::Error> {
    sqlx::query_as(
        "WITH others AS (
             SELECT EXISTS (
                 SELECT 1 FROM company_partner
                  WHERE company_id = $1 AND role = $2 AND tenant = $3 AND state <> 'ENDED'
                    AND (source, reference) <> ($4, $5)) AS active),
         previous AS (
             SELECT state FROM company_partner
              WHERE company_id = $1 AND role = $2 AND tenant = $3
                AND source = $4 AND reference = $5),
         recorded AS (
             INSERT INTO company_partner (company_id, role, tenant, source, reference, state, until)
             VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $6 = 'ENDED' THEN now() END)
             ON CONFLICT (company_id, role, tenant, source, reference) DO UPDATE
                SET state = EXCLUDED.state,
                    until = CASE WHEN EXCLUDED.state = 'ENDED'
                                 THEN COALESCE(company_partner.until, now()) END
             RETURNING state)
         SELECT others.active OR COALESCE((SELECT state <> 'ENDED' FROM previous), false),
                others.active OR (SELECT state <> 'ENDED' FROM recorded)
           FROM others",
    )
    .bind(relationship.company_id)
    .bind(relationship.partner.role.as_str())
    .bind(&relationship.partner.tenant)
    .bind(relationship.source.as_str())
    .bind(&relationship.reference)
    .bind(relationship.state.as_str())
    .fetch_one(conn)
    .await
}

/// The partners holding a relationship of `source` for `reference` (a match
/// id, say) with the company that has not ended.
pub async fn partners_by_reference(
    conn: &mut PgConnection,
    company_id: Uuid,
    source: Source,
    reference: &str,
) -> Result<Vec<Partner>, sqlx::Error> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT role, tenant FROM company_partner
          WHERE company_id = $1 AND source = $2 AND reference = $3 AND state <> 'ENDED'",
    )
    .bind(company_id)
    .bind(source.as_str())
    .bind(reference)
    .fetch_all(conn)
    .await?;
    Ok(stored_partners(rows))
}

/// Most partners one event names: far more than work with any one
/// company (its agencies, its advisor, the offices of its open matches).
pub(crate) const MAX_NAMED_PARTNERS: i64 = 100;

/// The partners that work with the company of case `case` (an SQL
/// expression) now, as (role, tenant) rows in a stable order.
fn case_partners_sql(case: &str) -> String {
    format!(
        "SELECT DISTINCT p.role, p.tenant
           FROM support_case c
           JOIN company_partner p ON p.company_id = c.company_id
          WHERE c.id = {case} AND p.state <> 'ENDED'
          ORDER BY p.role, p.tenant
          LIMIT {MAX_NAMED_PARTNERS}"
    )
}

/// The same partners as the `text[]` of keys an append names them by
/// (`events::Appending::insert_sql`): the stored roles are spelled as
/// the feed spells them.
pub(crate) fn case_partner_keys_sql(case: &str) -> String {
    format!(
        "ARRAY(SELECT {key} FROM ({partners}) AS p)",
        key = onestop_platform::events::partner_key_sql("p.role", "p.tenant"),
        partners = case_partners_sql(case),
    )
}

/// The partners that work with the case's company now, in a stable order.
pub async fn partners_of_case(
    conn: &mut PgConnection,
    case_id: Uuid,
) -> Result<Vec<Partner>, sqlx::Error> {
    let rows: Vec<(String, String)> = sqlx::query_as(&case_partners_sql("$1"))
        .bind(case_id)
        .fetch_all(conn)
        .await?;
    Ok(stored_partners(rows))
}

/// Partners from their stored (role, tenant) rows.
pub(crate) fn stored_partners(rows: Vec<(String, String)>) -> Vec<Partner> {
    rows.into_iter()
        .filter_map(|(role, tenant)| {
            Some(Partner {
                role: PartnerRole::from_stored(&role)?,
                tenant,
            })
        })
        .collect()
}

/// Whether an admin's grant to `partner` is in force.
pub async fn has_active_grant(
    conn: &mut PgConnection,
    company_id: Uuid,
    partner: &Partner,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM company_partner
                         WHERE company_id = $1 AND role = $2 AND tenant = $3
                           AND source = 'GRANT' AND state <> 'ENDED')",
    )
    .bind(company_id)
    .bind(partner.role.as_str())
    .bind(&partner.tenant)
    .fetch_one(conn)
    .await
}

fn partner_row(row: &sqlx::postgres::PgRow) -> pb::CompanyPartner {
    let role = PartnerRole::from_stored(row.get("role"));
    pb::CompanyPartner {
        company_id: row.get::<Uuid, _>("company_id").to_string(),
        role: role.map(|r| r.to_proto() as i32).unwrap_or_default(),
        tenant: row.get("tenant"),
        source: Source::from_stored(row.get("source"))
            .map(|s| s.to_proto() as i32)
            .unwrap_or_default(),
        state: State::from_stored(row.get("state"))
            .map(|s| s.to_proto() as i32)
            .unwrap_or_default(),
        since: Some(to_timestamp(row.get("since"))),
        until: row
            .get::<Option<DateTime<Utc>>, _>("until")
            .map(to_timestamp),
        reference: row.get("reference"),
    }
}

/// One relationship as the API shows it.
pub async fn load_relationship(
    conn: &mut PgConnection,
    company_id: Uuid,
    partner: &Partner,
    source: Source,
    reference: &str,
) -> Result<Option<pb::CompanyPartner>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT company_id, role, tenant, source, reference, state, since, until
           FROM company_partner
          WHERE company_id = $1 AND role = $2 AND tenant = $3 AND source = $4 AND reference = $5",
    )
    .bind(company_id)
    .bind(partner.role.as_str())
    .bind(&partner.tenant)
    .bind(source.as_str())
    .bind(reference)
    .fetch_optional(conn)
    .await?;
    Ok(row.as_ref().map(partner_row))
}

/// Oldest first, each with its page key (since, then the row's identity).
pub async fn list_partners(
    conn: &mut PgConnection,
    company_id: Uuid,
    page: &Page<(DateTime<Utc>, String)>,
) -> Result<Vec<((DateTime<Utc>, String), pb::CompanyPartner)>, sqlx::Error> {
    let (after_since, after_key) = page.after.clone().unzip();
    let rows = sqlx::query(
        "SELECT company_id, role, tenant, source, reference, state, since, until,
                role || '/' || tenant || '/' || source || '/' || reference AS key
           FROM company_partner
          WHERE company_id = $1
            AND ($2::timestamptz IS NULL
                 OR (since, role || '/' || tenant || '/' || source || '/' || reference) > ($2, $3))
          ORDER BY since, key
          LIMIT $4",
    )
    .bind(company_id)
    .bind(after_since)
    .bind(after_key)
    .bind(page.fetch_limit())
    .fetch_all(conn)
    .await?;
    Ok(rows
        .iter()
        .map(|row| ((row.get("since"), row.get("key")), partner_row(row)))
        .collect())
}
