//! Reading the figures of a period out of the projections. Every list is
//! bounded; the natural sizes (offices, provinces, agencies, programs,
//! markets) are far below the bounds.

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::QueryAs;
use sqlx::{FromRow, PgPool, Postgres};

/// Most rows any one list returns.
const MAX_ROWS: i64 = 1000;

/// The period and filters a read is for.
#[derive(Debug, Clone, Copy)]
pub struct Window<'a> {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub province: Option<&'a str>,
    pub agency_id: Option<&'a str>,
}

/// `sql` with the window bound as $1 (start), $2 (end) and $3 (province);
/// further parameters follow.
fn in_window<'q, O>(sql: &'q str, window: Window<'q>) -> QueryAs<'q, Postgres, O, PgArguments>
where
    O: for<'r> FromRow<'r, PgRow>,
{
    sqlx::query_as(sql)
        .bind(window.start)
        .bind(window.end)
        .bind(window.province)
}

#[derive(Debug, sqlx::FromRow)]
pub struct OfficeVetting {
    pub trade_office_id: String,
    pub verified: i64,
    pub rejected: i64,
}

/// Every trade office known (by its buyers or decisions), with the
/// distinct buyers it verified and rejected in the window.
pub async fn vetting_by_office(
    pool: &PgPool,
    window: Window<'_>,
) -> Result<Vec<OfficeVetting>, sqlx::Error> {
    sqlx::query_as(
        "WITH offices AS (
             SELECT trade_office_id FROM buyer
             UNION SELECT trade_office_id FROM vetting_decision)
         SELECT o.trade_office_id,
                count(DISTINCT d.buyer_id) FILTER (WHERE d.status = 'VERIFIED') AS verified,
                count(DISTINCT d.buyer_id) FILTER (WHERE d.status = 'REJECTED') AS rejected
           FROM offices o
           LEFT JOIN vetting_decision d
                  ON d.trade_office_id = o.trade_office_id
                 AND d.decided_at >= $1 AND d.decided_at < $2
          GROUP BY o.trade_office_id
          ORDER BY verified DESC, o.trade_office_id
          LIMIT $3",
    )
    .bind(window.start)
    .bind(window.end)
    .bind(MAX_ROWS)
    .fetch_all(pool)
    .await
}

#[derive(Debug, sqlx::FromRow)]
pub struct ConsultationCounts {
    pub booked: i64,
    pub companies: i64,
    pub buyers: i64,
}

pub async fn consultations(
    pool: &PgPool,
    window: Window<'_>,
) -> Result<ConsultationCounts, sqlx::Error> {
    in_window(
        "SELECT count(*) AS booked, count(DISTINCT k.company_id) AS companies,
                count(DISTINCT k.buyer_id) AS buyers
           FROM consultation k LEFT JOIN company c ON c.company_id = k.company_id
          WHERE k.booked_at >= $1 AND k.booked_at < $2
            AND ($3::text IS NULL OR c.province = $3)",
        window,
    )
    .fetch_one(pool)
    .await
}

#[derive(Debug, sqlx::FromRow)]
pub struct CaseTotals {
    pub opened: i64,
    pub closed: i64,
    pub all_delivered: i64,
    /// Seconds.
    pub median_to_all_delivered: Option<f64>,
}

pub async fn case_totals(pool: &PgPool, window: Window<'_>) -> Result<CaseTotals, sqlx::Error> {
    in_window(
        "SELECT count(*) FILTER (WHERE opened_at >= $1 AND opened_at < $2) AS opened,
                count(*) FILTER (WHERE closed_at >= $1 AND closed_at < $2) AS closed,
                count(*) FILTER (WHERE opened_at >= $1 AND opened_at < $2
                                   AND all_delivered_at IS NOT NULL) AS all_delivered,
                percentile_cont(0.5) WITHIN GROUP (
                    ORDER BY extract(epoch FROM all_delivered_at - opened_at))
                    FILTER (WHERE opened_at >= $1 AND opened_at < $2)
                    AS median_to_all_delivered
           FROM support_case
          WHERE ($3::text IS NULL OR province = $3)
            AND ((opened_at >= $1 AND opened_at < $2) OR (closed_at >= $1 AND closed_at < $2))",
        window,
    )
    .fetch_one(pool)
    .await
}

#[derive(Debug, sqlx::FromRow)]
pub struct WeekCount {
    /// "YYYY-MM-DD" of the Monday, Asia/Seoul.
    pub week_start: String,
    pub opened: i64,
    pub closed: i64,
}

/// Cases opened and closed per week (Asia/Seoul) between `window.start`
/// and `window.end`, which fall on Mondays.
pub async fn cases_by_week(
    pool: &PgPool,
    window: Window<'_>,
) -> Result<Vec<WeekCount>, sqlx::Error> {
    in_window(
        "WITH moves AS (
             SELECT opened_at AS at, 1 AS opened, 0 AS closed FROM support_case
              WHERE opened_at >= $1 AND opened_at < $2 AND ($3::text IS NULL OR province = $3)
             UNION ALL
             SELECT closed_at, 0, 1 FROM support_case
              WHERE closed_at >= $1 AND closed_at < $2 AND ($3::text IS NULL OR province = $3))
         SELECT to_char(date_trunc('week', at AT TIME ZONE 'Asia/Seoul'), 'YYYY-MM-DD') AS week_start,
                sum(opened)::bigint AS opened, sum(closed)::bigint AS closed
           FROM moves GROUP BY 1 ORDER BY 1 LIMIT $4",
        window,
    )
    .bind(MAX_ROWS)
    .fetch_all(pool)
    .await
}

#[derive(Debug, sqlx::FromRow)]
pub struct CaseGroupCount {
    pub province: String,
    pub stage: String,
    pub opened: i64,
    pub closed: i64,
}

pub async fn cases_by_group(
    pool: &PgPool,
    window: Window<'_>,
) -> Result<Vec<CaseGroupCount>, sqlx::Error> {
    in_window(
        "SELECT province, stage, count(*) AS opened, count(closed_at) AS closed
           FROM support_case
          WHERE opened_at >= $1 AND opened_at < $2 AND ($3::text IS NULL OR province = $3)
          GROUP BY province, stage ORDER BY province, stage LIMIT $4",
        window,
    )
    .bind(MAX_ROWS)
    .fetch_all(pool)
    .await
}

#[derive(Debug, sqlx::FromRow)]
pub struct NeedGroupCount {
    pub owner: String,
    pub status: String,
    pub needs: i64,
}

/// Needs opened in the window, by owner and where they stand now.
pub async fn needs_by_owner(
    pool: &PgPool,
    window: Window<'_>,
) -> Result<Vec<NeedGroupCount>, sqlx::Error> {
    in_window(
        "SELECT n.owner, n.status, count(*) AS needs
           FROM need n LEFT JOIN support_case c ON c.case_id = n.case_id
          WHERE n.owner <> '' AND n.opened_at >= $1 AND n.opened_at < $2
            AND ($3::text IS NULL OR c.province = $3)
          GROUP BY n.owner, n.status ORDER BY n.owner, n.status LIMIT $4",
        window,
    )
    .bind(MAX_ROWS)
    .fetch_all(pool)
    .await
}

#[derive(Debug, sqlx::FromRow)]
pub struct FunnelRow {
    pub agency_id: String,
    /// None on the agency's total row.
    pub program_id: Option<String>,
    pub sent: i64,
    pub accepted: i64,
    pub declined: i64,
    pub completed: i64,
    pub failed: i64,
    pub sla_breached: i64,
    pub waiting: i64,
    /// Seconds.
    pub median_to_accept: Option<f64>,
}

/// Legs sent in the window, per agency and program and per agency,
/// agencies with the most legs first, each agency's total before its
/// programs.
pub async fn referral_funnel(
    pool: &PgPool,
    window: Window<'_>,
) -> Result<Vec<FunnelRow>, sqlx::Error> {
    in_window(
        "SELECT agency_id, program_id, sent, accepted, declined, completed, failed,
                sla_breached, waiting, median_to_accept
           FROM (SELECT agency_id, program_id,
                        count(*) AS sent,
                        count(*) FILTER (WHERE accepted_at IS NOT NULL) AS accepted,
                        count(*) FILTER (WHERE status = 'DECLINED') AS declined,
                        count(*) FILTER (WHERE status = 'COMPLETED') AS completed,
                        count(*) FILTER (WHERE status = 'FAILED') AS failed,
                        count(*) FILTER (WHERE status = 'SLA_BREACHED') AS sla_breached,
                        count(*) FILTER (WHERE status = 'SENT') AS waiting,
                        percentile_cont(0.5) WITHIN GROUP (
                            ORDER BY extract(epoch FROM accepted_at - sent_at)) AS median_to_accept,
                        sum(count(*)) OVER (PARTITION BY agency_id) AS agency_sent
                   FROM referral_leg
                  WHERE sent_at >= $1 AND sent_at < $2
                    AND ($3::text IS NULL OR province = $3)
                    AND ($4::text IS NULL OR agency_id = $4)
                  GROUP BY GROUPING SETS ((agency_id, program_id), (agency_id))) AS f
          ORDER BY agency_sent DESC, agency_id, program_id NULLS FIRST
          LIMIT $5",
        window,
    )
    .bind(window.agency_id)
    .bind(MAX_ROWS)
    .fetch_all(pool)
    .await
}

#[derive(Debug, sqlx::FromRow)]
pub struct AdvisorKindLoad {
    pub kind: String,
    pub advisors: i64,
    pub capacity: i64,
    pub active_companies: i64,
}

/// Active advisors now, by kind; with a province, those based there.
pub async fn advisor_load(
    pool: &PgPool,
    province: Option<&str>,
) -> Result<Vec<AdvisorKindLoad>, sqlx::Error> {
    sqlx::query_as(
        "SELECT a.kind, count(*) AS advisors, coalesce(sum(a.capacity), 0)::bigint AS capacity,
                coalesce(sum(l.companies), 0)::bigint AS active_companies
           FROM advisor a
           LEFT JOIN (SELECT advisor_id, count(*) AS companies FROM assignment
                       WHERE status = 'ACTIVE' GROUP BY advisor_id) AS l
                  ON l.advisor_id = a.advisor_id
          WHERE a.active AND ($1::text IS NULL OR a.region = $1)
          GROUP BY a.kind ORDER BY a.kind LIMIT $2",
    )
    .bind(province)
    .bind(MAX_ROWS)
    .fetch_all(pool)
    .await
}

/// Companies waiting for an advisor now and active assignments whose
/// contact is overdue now; with a province, companies based there.
pub async fn waiting_and_overdue(
    pool: &PgPool,
    province: Option<&str>,
) -> Result<(i64, i64), sqlx::Error> {
    sqlx::query_as(
        "SELECT (SELECT count(DISTINCT w.company_id) FROM waitlist_entry w
                   LEFT JOIN company c ON c.company_id = w.company_id
                  WHERE w.waiting AND ($1::text IS NULL OR c.province = $1)),
                (SELECT count(*) FROM assignment a
                   LEFT JOIN company c ON c.company_id = a.company_id
                  WHERE a.status = 'ACTIVE' AND a.overdue_since IS NOT NULL
                    AND ($1::text IS NULL OR c.province = $1))",
    )
    .bind(province)
    .fetch_one(pool)
    .await
}

#[derive(Debug, sqlx::FromRow)]
pub struct MarketCurrencyDeals {
    pub market: String,
    pub currency: String,
    pub recorded: i64,
    pub confirmed: i64,
    pub confirmed_minor: i64,
}

/// Deals recorded or confirmed in the window, per buyer country and
/// currency.
pub async fn deals_by_market(
    pool: &PgPool,
    window: Window<'_>,
) -> Result<Vec<MarketCurrencyDeals>, sqlx::Error> {
    in_window(
        "SELECT coalesce(b.country, '') AS market, d.currency,
                count(*) FILTER (WHERE d.recorded_at >= $1 AND d.recorded_at < $2) AS recorded,
                count(*) FILTER (WHERE d.confirmed_at >= $1 AND d.confirmed_at < $2) AS confirmed,
                coalesce(sum(d.amount_minor) FILTER (
                    WHERE d.confirmed_at >= $1 AND d.confirmed_at < $2), 0)::bigint AS confirmed_minor
           FROM deal d
           LEFT JOIN buyer b ON b.buyer_id = d.buyer_id
           LEFT JOIN company c ON c.company_id = d.company_id
          WHERE ((d.recorded_at >= $1 AND d.recorded_at < $2)
                 OR (d.confirmed_at >= $1 AND d.confirmed_at < $2))
            AND ($3::text IS NULL OR c.province = $3)
          GROUP BY 1, 2 ORDER BY 1, 2 LIMIT $4",
        window,
    )
    .bind(MAX_ROWS)
    .fetch_all(pool)
    .await
}

#[derive(Debug, sqlx::FromRow)]
pub struct FeeTotal {
    pub currency: String,
    pub charges: i64,
    pub amount_minor: i64,
}

/// Fees charged for the given months ("YYYY-MM"), per currency.
pub async fn fees(pool: &PgPool, months: &[String]) -> Result<Vec<FeeTotal>, sqlx::Error> {
    sqlx::query_as(
        "SELECT currency, count(*) AS charges, coalesce(sum(amount_minor), 0)::bigint AS amount_minor
           FROM fee_charge WHERE month = ANY($1)
          GROUP BY currency ORDER BY currency LIMIT $2",
    )
    .bind(months)
    .bind(MAX_ROWS)
    .fetch_all(pool)
    .await
}

#[derive(Debug, sqlx::FromRow)]
pub struct TickerRow {
    pub source: String,
    pub event_id: i64,
    pub event_type: String,
    pub occurred_at: DateTime<Utc>,
    pub summary: String,
}

/// The newest events, with an agency only those about it.
pub async fn ticker(
    pool: &PgPool,
    agency_id: Option<&str>,
    limit: i64,
) -> Result<Vec<TickerRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT source, event_id, event_type, occurred_at, summary FROM ticker
          WHERE ($1::text IS NULL OR agency_id = $1)
          ORDER BY occurred_at DESC, event_id DESC LIMIT $2",
    )
    .bind(agency_id)
    .bind(limit)
    .fetch_all(pool)
    .await
}
