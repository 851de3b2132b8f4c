//! Readiness diagnoses and their history.

use onestop_contracts::event_types::IntakeEvent;
use onestop_contracts::intake::v1 as pb;
use onestop_platform::events::{self, NewEvent};
use onestop_platform::idempotency::IdempotencyKey;
use onestop_platform::{ApiError, ApiResult, Caller};
use uuid::Uuid;

use super::companies::{stage_event, vanished};
use super::{IntakeApi, READERS, WRITERS};
use crate::domain::company::{languages_of, stage_of};
use crate::domain::readiness::{self, AssessmentQuery, Diagnose};
use crate::store::{self, Lock, NewAssessment};
use crate::{access, ladder};

impl IntakeApi {
    pub(super) async fn diagnose_readiness(
        &self,
        caller: Caller,
        request: pb::DiagnoseReadinessRequest,
    ) -> ApiResult<pb::Assessment> {
        caller.require(WRITERS)?;
        let key = IdempotencyKey::new(
            &caller,
            "DiagnoseReadiness",
            &request.idempotency_key,
            &request,
        )?;
        let Diagnose {
            company_id,
            answers,
        } = Diagnose::try_from(&request)?;

        let mut tx = self.pool.begin().await?;
        // Diagnoses need a partner that works with the company now.
        access::company_view(&mut tx, &caller, company_id).await?;
        if let Some(first) = key.replay::<pb::Assessment>(&mut tx).await? {
            return Ok(first);
        }
        let company = store::load_company(&mut tx, company_id, Lock::ForUpdate)
            .await?
            .ok_or_else(|| ApiError::not_found("company", company_id))?;
        let diagnosis = readiness::diagnose(&answers, &languages_of(&company));
        let before = stage_of(&company);
        let version = company.assessment_version as i32 + 1;
        let assessment_id = Uuid::now_v7();
        store::insert_assessment(
            &mut tx,
            &NewAssessment {
                id: assessment_id,
                company_id,
                version,
                previous_stage: before,
                answers: &answers.to_proto(),
                diagnosis: &diagnosis,
            },
        )
        .await?;
        // The assessment's events go in one append, in this order.
        let mut new_events = vec![NewEvent::new(
            IntakeEvent::CompanyAssessed,
            company_id,
            &pb::CompanyAssessed {
                company_id: company_id.to_string(),
                assessment_id: assessment_id.to_string(),
                version: version as u32,
                score: diagnosis.score,
                stage: diagnosis.stage.to_proto() as i32,
            },
        )];
        if diagnosis.stage != before {
            new_events.push(stage_event(
                company_id,
                before,
                diagnosis.stage,
                "assessment",
            ));
            let moved = store::load_company(&mut tx, company_id, Lock::None)
                .await?
                .ok_or_else(|| vanished("company"))?;
            new_events
                .extend(ladder::open_follow_ons(&mut tx, &moved, before, diagnosis.stage).await?);
        }
        events::append_all(&mut tx, new_events).await?;
        let assessment = store::load_assessment(&mut tx, assessment_id)
            .await?
            .ok_or_else(|| vanished("assessment"))?;
        key.record(&mut tx, &assessment, &company_id.to_string())
            .await?;
        tx.commit().await?;
        Ok(assessment)
    }

    pub(super) async fn list_assessments(
        &self,
        caller: Caller,
        request: pb::ListAssessmentsRequest,
    ) -> ApiResult<pb::ListAssessmentsResponse> {
        caller.require(READERS)?;
        let AssessmentQuery { company_id, page } = AssessmentQuery::try_from(&request)?;
        let mut conn = self.pool.acquire().await?;
        access::company_view(&mut conn, &caller, company_id).await?;
        let mut assessments = store::list_assessments(&mut conn, company_id, &page).await?;
        let next_page_token = page.finish(&mut assessments, |a| a.version as i32);
        Ok(pb::ListAssessmentsResponse {
            assessments,
            next_page_token,
        })
    }
}
