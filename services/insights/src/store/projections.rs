//! Applying facts: each upsert is safe to meet twice, though the cursor
//! lock already sees to it that an event is applied once.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::domain::facts::{AssignmentStatus, Fact, TickerLine};
use crate::domain::source::Source;

/// How many events the ticker keeps.
const TICKER_KEEP: i64 = 500;

pub async fn apply(conn: &mut PgConnection, fact: &Fact) -> Result<(), sqlx::Error> {
    match fact {
        Fact::Company {
            company_id,
            province,
            stage,
        } => upsert_company(conn, company_id, province, stage).await,
        Fact::CompanyStage { company_id, stage } => {
            upsert_company(conn, company_id, "", stage).await
        }
        Fact::CaseOpened {
            case_id,
            company_id,
            need_ids,
            at,
        } => {
            sqlx::query(
                "INSERT INTO support_case (case_id, company_id, province, stage, opened_at)
                 SELECT $1, $2, coalesce(c.province, ''), coalesce(c.stage, ''), $3
                   FROM (SELECT 1) AS one LEFT JOIN company c ON c.company_id = $2
                 ON CONFLICT (case_id) DO NOTHING",
            )
            .bind(case_id)
            .bind(company_id)
            .bind(at)
            .execute(&mut *conn)
            .await?;
            // Known from the start, so the case is not "all delivered"
            // before its needs' own events arrive.
            sqlx::query(
                "INSERT INTO need (need_id, case_id)
                 SELECT unnest($1::text[]), $2 ON CONFLICT (need_id) DO NOTHING",
            )
            .bind(need_ids)
            .bind(case_id)
            .execute(&mut *conn)
            .await?;
            refresh_case(conn, case_id, *at).await
        }
        Fact::NeedOpened {
            need_id,
            case_id,
            owner,
            company_id,
            province,
            stage,
            at,
        } => {
            sqlx::query(
                "INSERT INTO need (need_id, case_id, owner, opened_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (need_id) DO UPDATE
                    SET owner = EXCLUDED.owner,
                        opened_at = coalesce(need.opened_at, EXCLUDED.opened_at)",
            )
            .bind(need_id)
            .bind(case_id)
            .bind(owner)
            .bind(at)
            .execute(&mut *conn)
            .await?;
            // The hand-off carries the company as it is now: the freshest
            // province and stage insights gets.
            upsert_company(conn, company_id, province, stage).await?;
            sqlx::query(
                "UPDATE support_case SET province = $2, stage = $3
                  WHERE case_id = $1 AND province = ''",
            )
            .bind(case_id)
            .bind(province)
            .bind(stage)
            .execute(&mut *conn)
            .await?;
            refresh_case(conn, case_id, *at).await
        }
        Fact::NeedDelivered {
            need_id,
            case_id,
            at,
        } => {
            sqlx::query(
                "UPDATE need SET delivered_at = coalesce(delivered_at, $2),
                                 status = CASE WHEN status = 'OPEN' THEN 'ROUTED' ELSE status END
                  WHERE need_id = $1",
            )
            .bind(need_id)
            .bind(at)
            .execute(&mut *conn)
            .await?;
            refresh_case(conn, case_id, *at).await
        }
        Fact::NeedStatus {
            need_id,
            case_id,
            status,
            at,
        } => {
            sqlx::query("UPDATE need SET status = $2 WHERE need_id = $1")
                .bind(need_id)
                .bind(status)
                .execute(&mut *conn)
                .await?;
            refresh_case(conn, case_id, *at).await
        }
        Fact::Buyer {
            buyer_id,
            trade_office_id,
            country,
        } => {
            sqlx::query(
                "INSERT INTO buyer (buyer_id, trade_office_id, country) VALUES ($1, $2, $3)
                 ON CONFLICT (buyer_id) DO UPDATE
                    SET trade_office_id = EXCLUDED.trade_office_id, country = EXCLUDED.country",
            )
            .bind(buyer_id)
            .bind(trade_office_id)
            .bind(country)
            .execute(&mut *conn)
            .await?;
            Ok(())
        }
        Fact::Vetted {
            event_id,
            buyer_id,
            trade_office_id,
            status,
            at,
        } => {
            sqlx::query(
                "INSERT INTO vetting_decision (event_id, buyer_id, trade_office_id, status, decided_at)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (event_id) DO NOTHING",
            )
            .bind(event_id)
            .bind(buyer_id)
            .bind(trade_office_id)
            .bind(status)
            .bind(at)
            .execute(&mut *conn)
            .await?;
            Ok(())
        }
        Fact::Consultation {
            consultation_id,
            company_id,
            buyer_id,
            at,
        } => {
            sqlx::query(
                "INSERT INTO consultation (consultation_id, company_id, buyer_id, booked_at)
                 VALUES ($1, $2, $3, $4) ON CONFLICT (consultation_id) DO NOTHING",
            )
            .bind(consultation_id)
            .bind(company_id)
            .bind(buyer_id)
            .bind(at)
            .execute(&mut *conn)
            .await?;
            Ok(())
        }
        Fact::DealRecorded {
            deal_id,
            company_id,
            buyer_id,
            value,
            at,
        } => {
            sqlx::query(
                "INSERT INTO deal (deal_id, company_id, buyer_id, currency, amount_minor, recorded_at)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (deal_id) DO NOTHING",
            )
            .bind(deal_id)
            .bind(company_id)
            .bind(buyer_id)
            .bind(&value.currency_code)
            .bind(value.amount_minor)
            .bind(at)
            .execute(&mut *conn)
            .await?;
            Ok(())
        }
        Fact::DealConfirmed { deal_id, at } => {
            sqlx::query(
                "UPDATE deal SET confirmed_at = coalesce(confirmed_at, $2) WHERE deal_id = $1",
            )
            .bind(deal_id)
            .bind(at)
            .execute(&mut *conn)
            .await?;
            Ok(())
        }
        Fact::Referral {
            referral_id,
            province,
            legs,
        } => {
            for leg in legs {
                sqlx::query(
                    "INSERT INTO referral_leg (referral_id, leg_number, agency_id, program_id,
                                               province, status, sent_at, accepted_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                     ON CONFLICT (referral_id, leg_number) DO UPDATE
                        SET status = EXCLUDED.status,
                            accepted_at = coalesce(EXCLUDED.accepted_at, referral_leg.accepted_at)",
                )
                .bind(referral_id)
                .bind(leg.leg_number)
                .bind(&leg.agency_id)
                .bind(&leg.program_id)
                .bind(province)
                .bind(&leg.status)
                .bind(leg.sent_at)
                .bind(leg.accepted_at)
                .execute(&mut *conn)
                .await?;
            }
            Ok(())
        }
        Fact::Advisor {
            advisor_id,
            kind,
            region,
            capacity,
        } => {
            sqlx::query(
                "INSERT INTO advisor (advisor_id, kind, region, capacity) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (advisor_id) DO UPDATE
                    SET kind = EXCLUDED.kind, region = EXCLUDED.region,
                        capacity = EXCLUDED.capacity",
            )
            .bind(advisor_id)
            .bind(kind)
            .bind(region)
            .bind(capacity)
            .execute(&mut *conn)
            .await?;
            Ok(())
        }
        Fact::AdvisorDeactivated { advisor_id } => {
            sqlx::query("UPDATE advisor SET active = false WHERE advisor_id = $1")
                .bind(advisor_id)
                .execute(&mut *conn)
                .await?;
            Ok(())
        }
        Fact::Assigned {
            assignment_id,
            advisor_id,
            company_id,
        } => {
            sqlx::query(
                "INSERT INTO assignment (assignment_id, advisor_id, company_id, status)
                 VALUES ($1, $2, $3, 'ACTIVE') ON CONFLICT (assignment_id) DO NOTHING",
            )
            .bind(assignment_id)
            .bind(advisor_id)
            .bind(company_id)
            .execute(&mut *conn)
            .await?;
            // However the company got its advisor, it no longer waits.
            sqlx::query(
                "UPDATE waitlist_entry SET waiting = false WHERE company_id = $1 AND waiting",
            )
            .bind(company_id)
            .execute(&mut *conn)
            .await?;
            Ok(())
        }
        Fact::AssignmentMoved {
            assignment_id,
            status,
        } => {
            sqlx::query(
                "UPDATE assignment SET status = $2, overdue_since = NULL WHERE assignment_id = $1",
            )
            .bind(assignment_id)
            .bind(status.as_str())
            .execute(&mut *conn)
            .await?;
            Ok(())
        }
        Fact::Waitlisted {
            entry_id,
            company_id,
        } => {
            sqlx::query(
                "INSERT INTO waitlist_entry (entry_id, company_id) VALUES ($1, $2)
                 ON CONFLICT (entry_id) DO NOTHING",
            )
            .bind(entry_id)
            .bind(company_id)
            .execute(&mut *conn)
            .await?;
            Ok(())
        }
        Fact::ContactMade { assignment_id } => {
            sqlx::query("UPDATE assignment SET overdue_since = NULL WHERE assignment_id = $1")
                .bind(assignment_id)
                .execute(&mut *conn)
                .await?;
            Ok(())
        }
        Fact::ContactOverdue {
            assignment_id,
            due_at,
        } => {
            sqlx::query(
                "UPDATE assignment SET overdue_since = coalesce(overdue_since, $2)
                  WHERE assignment_id = $1 AND status = $3",
            )
            .bind(assignment_id)
            .bind(due_at)
            .bind(AssignmentStatus::Active.as_str())
            .execute(&mut *conn)
            .await?;
            Ok(())
        }
        Fact::Fee {
            charge_id,
            program_id,
            month,
            value,
        } => {
            sqlx::query(
                "INSERT INTO fee_charge (charge_id, program_id, month, currency, amount_minor)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (charge_id) DO NOTHING",
            )
            .bind(charge_id)
            .bind(program_id)
            .bind(month)
            .bind(&value.currency_code)
            .bind(value.amount_minor)
            .execute(&mut *conn)
            .await?;
            Ok(())
        }
    }
}

/// Keeps what is known; an empty province or stage changes nothing.
async fn upsert_company(
    conn: &mut PgConnection,
    company_id: &str,
    province: &str,
    stage: &str,
) -> Result<(), sqlx::Error> {
    if company_id.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO company (company_id, province, stage) VALUES ($1, $2, $3)
         ON CONFLICT (company_id) DO UPDATE
            SET province = CASE WHEN EXCLUDED.province = '' THEN company.province
                                ELSE EXCLUDED.province END,
                stage = CASE WHEN EXCLUDED.stage = '' THEN company.stage ELSE EXCLUDED.stage END",
    )
    .bind(company_id)
    .bind(province)
    .bind(stage)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// After a need moved: the first moment every need was delivered (or
/// cancelled), and whether every need is finished (the case is closed; a
/// new need opens it again).
async fn refresh_case(
    conn: &mut PgConnection,
    case_id: &str,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE support_case c
            SET all_delivered_at = CASE
                    WHEN c.all_delivered_at IS NOT NULL THEN c.all_delivered_at
                    WHEN s.needs > 0 AND s.undelivered = 0 THEN $2
                END,
                closed_at = CASE
                    WHEN s.needs > 0 AND s.unfinished = 0 THEN coalesce(c.closed_at, $2)
                END
           FROM (SELECT count(*) AS needs,
                        count(*) FILTER (WHERE delivered_at IS NULL AND status <> 'CANCELLED')
                            AS undelivered,
                        count(*) FILTER (WHERE status NOT IN ('DONE', 'CANCELLED')) AS unfinished
                   FROM need WHERE case_id = $1) AS s
          WHERE c.case_id = $1",
    )
    .bind(case_id)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Puts an event on the ticker.
pub async fn add_to_ticker(
    conn: &mut PgConnection,
    source: Source,
    event_id: i64,
    event_type: &str,
    occurred_at: DateTime<Utc>,
    line: &TickerLine,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO ticker (source, event_id, event_type, occurred_at, agency_id, summary)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (source, event_id) DO NOTHING",
    )
    .bind(source.as_str())
    .bind(event_id)
    .bind(event_type)
    .bind(occurred_at)
    .bind(&line.agency_id)
    .bind(&line.summary)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Drops all but the newest ticker events.
pub async fn trim_ticker(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query(
        "DELETE FROM ticker WHERE (source, event_id) IN (
             SELECT source, event_id FROM ticker
              ORDER BY occurred_at DESC, event_id DESC OFFSET $1)",
    )
    .bind(TICKER_KEEP)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
