//! Sample test marketing: sending a sample to verified buyers, their
//! structured feedback (certification gaps raise their own events), and
//! the report.

use onestop_contracts::buyers::v1 as pb;
use onestop_contracts::event_types::BuyersEvent;
use onestop_platform::error::{is_unique_violation, parse_id};
use onestop_platform::events::{self, NewEvent};
use onestop_platform::idempotency::IdempotencyKey;
use onestop_platform::time::to_timestamp;
use onestop_platform::{ApiError, ApiResult, Caller, Role, Violations};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{BuyersApi, MATCH_WRITERS, READERS, SEARCHERS, check_office};
use crate::access;
use crate::domain::sample::{self, Feedback, NewSampleTest};
use crate::store::{self, Lock};

/// A partner starts a sample test only for a need buyers serves: the need,
/// case and company of one of intake's buyer searches, and a company it
/// works with (a trade office: one its buyers are matched with). Services
/// and admins may start one for any company. Anything else is NOT_FOUND.
async fn check_sample_need(
    conn: &mut PgConnection,
    caller: &Caller,
    test: &NewSampleTest,
) -> ApiResult<()> {
    if matches!(caller.role, Role::Service | Role::Admin) {
        return Ok(());
    }
    let not_served = || {
        ApiError::NotFound(format!(
            "no buyer search for need {:?} of company {:?} and case {:?}",
            test.need_id, test.company_id, test.case_id
        ))
    };
    let Some((company_id, case_id)) = store::search_for_need(conn, &test.need_id).await? else {
        return Err(not_served());
    };
    if company_id != test.company_id || case_id != test.case_id {
        return Err(not_served());
    }
    if !access::works_with(conn, caller, &company_id).await? {
        return Err(not_served());
    }
    Ok(())
}

impl BuyersApi {
    pub(super) async fn start_sample_test(
        &self,
        caller: Caller,
        request: pb::StartSampleTestRequest,
    ) -> ApiResult<pb::SampleTest> {
        caller.require(SEARCHERS)?;
        let key = IdempotencyKey::new(
            &caller,
            "StartSampleTest",
            &request.idempotency_key,
            &request,
        )?;
        let test = NewSampleTest::try_from(&request)?;
        let now = self.clock.now();
        let mut tx = self.pool.begin().await?;
        check_sample_need(&mut tx, &caller, &test).await?;
        let summaries = store::buyer_summaries(&mut tx, &test.buyer_ids).await?;
        let own_office = caller.tenant_for(Role::TradeOffice);
        let mut violations = Violations::default();
        for (i, id) in test.buyer_ids.iter().enumerate() {
            match summaries.get(id) {
                Some((summary, _))
                    if own_office.is_some_and(|own| own != summary.trade_office_id) =>
                {
                    violations.add(format!("buyer_ids[{i}]"), "not one of your office's buyers")
                }
                Some((_, matchable_until)) if *matchable_until > now => {}
                _ => violations.add(
                    format!("buyer_ids[{i}]"),
                    "not a matchable (verified, freshly vetted) buyer",
                ),
            }
        }
        violations.finish()?;
        if let Some(first) = key.replay::<pb::SampleTest>(&mut tx).await? {
            return Ok(first);
        }
        let id = Uuid::now_v7();
        store::insert_sample_test(&mut tx, id, &test, now).await?;
        events::append(
            &mut tx,
            NewEvent::new(
                BuyersEvent::SampleStarted,
                id,
                &pb::SampleTestStarted {
                    sample_test_id: id.to_string(),
                    company_id: test.company_id.clone(),
                    need_id: test.need_id.clone(),
                    case_id: test.case_id.clone(),
                    hs_code: test.hs_code.as_str().to_owned(),
                    buyer_ids: test.buyer_ids.iter().map(Uuid::to_string).collect(),
                },
            ),
        )
        .await?;
        let started = store::load_sample_test(&mut tx, id, Lock::None)
            .await?
            .ok_or_else(|| store::vanished("sample test"))?;
        key.record(&mut tx, &started, &id.to_string()).await?;
        tx.commit().await?;
        Ok(started)
    }

    pub(super) async fn record_sample_feedback(
        &self,
        caller: Caller,
        request: pb::RecordSampleFeedbackRequest,
    ) -> ApiResult<pb::SampleFeedback> {
        caller.require(MATCH_WRITERS)?;
        let key = IdempotencyKey::new(
            &caller,
            "RecordSampleFeedback",
            &request.idempotency_key,
            &request,
        )?;
        let Feedback {
            sample_test_id: test_id,
            buyer_id,
            ratings,
            certification_gaps: gaps,
            would_order,
            comment,
        } = Feedback::try_from(&request)?;
        let now = self.clock.now();
        let mut tx = self.pool.begin().await?;
        if let Some(first) = key.replay::<pb::SampleFeedback>(&mut tx).await? {
            return Ok(first);
        }
        let test = store::load_sample_test(&mut tx, test_id, Lock::ForUpdate)
            .await?
            .ok_or_else(|| ApiError::not_found("sample test", test_id))?;
        if !test.buyer_ids.contains(&buyer_id.to_string()) {
            return Err(ApiError::invalid(
                "buyer_id",
                "not one of this sample test's buyers",
            ));
        }
        let summaries = store::buyer_summaries(&mut tx, &[buyer_id]).await?;
        let (summary, _) = summaries
            .get(&buyer_id)
            .ok_or_else(|| ApiError::not_found("buyer", buyer_id))?;
        check_office(&caller, &summary.trade_office_id, "buyer", buyer_id)?;
        let feedback_id = Uuid::now_v7();
        let feedback = pb::SampleFeedback {
            feedback_id: feedback_id.to_string(),
            sample_test_id: test_id.to_string(),
            buyer_id: buyer_id.to_string(),
            country: summary.country.clone(),
            ratings: Some(ratings),
            certification_gaps: gaps.clone(),
            would_order,
            comment,
            recorded_at: Some(to_timestamp(now)),
        };
        if let Err(error) =
            store::insert_feedback(&mut tx, &feedback, feedback_id, test_id, buyer_id, now).await
        {
            if is_unique_violation(&error) {
                return Err(ApiError::AlreadyExists {
                    reason: "FEEDBACK_EXISTS",
                    message: "this buyer already gave feedback on the sample".into(),
                    metadata: vec![("buyer_id", buyer_id.to_string())],
                });
            }
            return Err(error.into());
        }
        let report_complete = store::complete_sample_test(&mut tx, test_id, now).await?;
        let mut new_events = vec![NewEvent::new(
            BuyersEvent::SampleFeedback,
            test_id,
            &pb::SampleFeedbackRecorded {
                sample_test_id: test_id.to_string(),
                feedback_id: feedback_id.to_string(),
                company_id: test.company_id.clone(),
                need_id: test.need_id.clone(),
                buyer_id: buyer_id.to_string(),
                ratings: Some(ratings),
                would_order,
                certification_gap_count: gaps.len() as u32,
                case_id: test.case_id.clone(),
                report_complete,
            },
        )];
        new_events.extend(gaps.iter().map(|gap| {
            NewEvent::new(
                BuyersEvent::SampleCertificationGap,
                test_id,
                &pb::SampleCertificationGap {
                    sample_test_id: test_id.to_string(),
                    feedback_id: feedback_id.to_string(),
                    company_id: test.company_id.clone(),
                    need_id: test.need_id.clone(),
                    case_id: test.case_id.clone(),
                    buyer_id: buyer_id.to_string(),
                    hs_code: test.hs_code.clone(),
                    certification: gap.clone(),
                    country: summary.country.clone(),
                },
            )
        }));
        events::append_all(&mut tx, new_events).await?;
        let stored = store::list_feedback(&mut tx, test_id, Some(feedback_id))
            .await?
            .pop()
            .ok_or_else(|| store::vanished("feedback"))?;
        key.record(&mut tx, &stored, &test_id.to_string()).await?;
        tx.commit().await?;
        Ok(stored)
    }

    pub(super) async fn get_sample_test_report(
        &self,
        caller: Caller,
        request: pb::GetSampleTestReportRequest,
    ) -> ApiResult<pb::SampleTestReport> {
        caller.require(READERS)?;
        let id = parse_id("sample_test_id", &request.sample_test_id)?;
        let mut conn = self.pool.acquire().await?;
        let test = store::load_sample_test(&mut conn, id, Lock::None)
            .await?
            .ok_or_else(|| ApiError::not_found("sample test", id))?;
        // A trade office reads tests its buyers are in (only their
        // feedback); agencies and advisors those of companies they work
        // with.
        let own_buyers = match caller.tenant_for(Role::TradeOffice) {
            Some(office) => {
                let ids: Vec<Uuid> = test
                    .buyer_ids
                    .iter()
                    .filter_map(|id| Uuid::parse_str(id).ok())
                    .collect();
                let summaries = store::buyer_summaries(&mut conn, &ids).await?;
                let own: Vec<String> = summaries
                    .values()
                    .filter(|(summary, _)| summary.trade_office_id == office)
                    .map(|(summary, _)| summary.buyer_id.clone())
                    .collect();
                if own.is_empty() {
                    return Err(ApiError::not_found("sample test", id));
                }
                own
            }
            None => {
                access::check_company(&mut conn, &caller, &test.company_id, "sample test", id)
                    .await?;
                Vec::new()
            }
        };
        let feedback = store::list_feedback(&mut conn, id, None).await?;
        Ok(access::present_report(
            &caller,
            &own_buyers,
            sample::report(test, feedback),
        ))
    }
}
