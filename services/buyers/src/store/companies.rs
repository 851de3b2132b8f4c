//! What buyers holds about each company it serves, as access and erasure
//! need it: which offices' buyers are matched with it, which buyer search
//! serves which need, and erasing its personal data and free text.

use sqlx::PgConnection;
use uuid::Uuid;

/// Whether a buyer of `office` is (or was) matched with the company.
pub async fn office_matched_with(
    conn: &mut PgConnection,
    office: &str,
    company_id: &str,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM buyer_match m JOIN buyer b ON b.id = m.buyer_id
                         WHERE m.company_id = $1 AND b.trade_office_id = $2)",
    )
    .bind(company_id)
    .bind(office)
    .fetch_one(conn)
    .await
}

/// Whether buyers knows the company: intake's feed has named it (a partner
/// works with it) or intake handed buyers one of its needs.
pub async fn company_known(conn: &mut PgConnection, company_id: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM known_partner WHERE company_id = $1)
             OR EXISTS (SELECT 1 FROM buyer_search WHERE company_id = $1)",
    )
    .bind(company_id)
    .fetch_one(conn)
    .await
}

/// The companies `office`'s buyers are matched with.
pub async fn companies_matched_with_office(
    conn: &mut PgConnection,
    office: &str,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT DISTINCT m.company_id FROM buyer_match m JOIN buyer b ON b.id = m.buyer_id
          WHERE b.trade_office_id = $1",
    )
    .bind(office)
    .fetch_all(conn)
    .await
}

/// The company and case of the buyer search intake opened for `need_id`.
pub async fn search_for_need(
    conn: &mut PgConnection,
    need_id: &str,
) -> Result<Option<(String, String)>, sqlx::Error> {
    sqlx::query_as("SELECT company_id, case_id FROM buyer_search WHERE need_id = $1")
        .bind(need_id)
        .fetch_optional(conn)
        .await
}

/// The company a lead was imported for.
pub async fn lead_company(
    conn: &mut PgConnection,
    lead_id: Uuid,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT company_id FROM lead WHERE id = $1")
        .bind(lead_id)
        .fetch_optional(conn)
        .await
}

/// The company a sample test is for.
pub async fn sample_test_company(
    conn: &mut PgConnection,
    test_id: Uuid,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT company_id FROM sample_test WHERE id = $1")
        .bind(test_id)
        .fetch_optional(conn)
        .await
}

/// What one erasure removed, by kind.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Erased {
    pub lead_contacts: u64,
    pub lead_notes: u64,
    pub feedback_comments: u64,
    pub deal_notes: u64,
    pub match_notes: u64,
    pub stored_responses: u64,
}

async fn run(conn: &mut PgConnection, sql: &str, company_id: &str) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(sql)
        .bind(company_id)
        .execute(conn)
        .await?
        .rows_affected())
}

/// Removes the company's leads' contacts and blanks every free text about
/// it (lead notes, feedback comments, deal and match notes), and forgets
/// the stored first responses of calls about its records, which repeat
/// them.
pub async fn erase_company(
    conn: &mut PgConnection,
    company_id: &str,
) -> Result<Erased, sqlx::Error> {
    // Responses are keyed by the record the call made or changed.
    let stored_responses = run(
        conn,
        "DELETE FROM idempotency_key WHERE resource_id IN (
             SELECT id::text FROM trade_show WHERE company_id = $1
             UNION ALL SELECT id::text FROM lead WHERE company_id = $1
             UNION ALL SELECT id::text FROM sample_test WHERE company_id = $1
             UNION ALL SELECT id::text FROM buyer_match WHERE company_id = $1
             UNION ALL SELECT id::text FROM buyer_search WHERE company_id = $1)",
        company_id,
    )
    .await?;
    Ok(Erased {
        lead_contacts: run(
            conn,
            "DELETE FROM lead_contact WHERE lead_id IN (SELECT id FROM lead WHERE company_id = $1)",
            company_id,
        )
        .await?,
        lead_notes: run(
            conn,
            "UPDATE lead SET note = '' WHERE company_id = $1 AND note <> ''",
            company_id,
        )
        .await?,
        feedback_comments: run(
            conn,
            "UPDATE sample_feedback SET comment = ''
              WHERE comment <> ''
                AND sample_test_id IN (SELECT id FROM sample_test WHERE company_id = $1)",
            company_id,
        )
        .await?,
        deal_notes: run(
            conn,
            "UPDATE deal SET note = '', dispute_note = ''
              WHERE company_id = $1 AND (note <> '' OR dispute_note <> '')",
            company_id,
        )
        .await?,
        match_notes: run(
            conn,
            "UPDATE match_transition SET note = ''
              WHERE note <> '' AND match_id IN (SELECT id FROM buyer_match WHERE company_id = $1)",
            company_id,
        )
        .await?,
        stored_responses,
    })
}
