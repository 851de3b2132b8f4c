//! Cases: opening one with its needs, reads and listings.

use onestop_contracts::event_types::IntakeEvent;
use onestop_contracts::intake::v1 as pb;
use onestop_platform::error::parse_id;
use onestop_platform::events::{self, NewEvent};
use onestop_platform::idempotency::IdempotencyKey;
use onestop_platform::{ApiError, ApiResult, Caller};
use uuid::Uuid;

use super::companies::vanished;
use super::{IntakeApi, READERS, WRITERS};
use crate::domain::case::{self, CaseQuery, NewCase, Standing};
use crate::domain::company::{snapshot, stage_of};
use crate::startup::SERVICE_NAME;
use crate::store::{self, Lock, NewEntry};
use crate::{access, needs, relationships};

impl IntakeApi {
    pub(super) async fn open_case(
        &self,
        caller: Caller,
        request: pb::OpenCaseRequest,
    ) -> ApiResult<pb::Case> {
        caller.require(WRITERS)?;
        let key = IdempotencyKey::new(&caller, "OpenCase", &request.idempotency_key, &request)?;
        let NewCase { company_id, needs } = NewCase::try_from(&request)?;

        let mut tx = self.pool.begin().await?;
        let consented_case = access::case_opening(&mut tx, &caller, company_id).await?;
        if let Some(first) = key.replay::<pb::Case>(&mut tx).await? {
            return Ok(first);
        }
        // An agency opening a case under the company's consent works with
        // it from now on.
        if let Some(relationship) = consented_case {
            relationships::record(&mut tx, &relationship).await?;
        }
        // Locked so two cases opened at once for one company agree on
        // whether it already has an open mentoring need.
        let company = store::load_company(&mut tx, company_id, Lock::ForUpdate)
            .await?
            .ok_or_else(|| ApiError::not_found("company", company_id))?;
        let standing = Standing {
            stage: stage_of(&company),
            small_merchant: company.profile.as_ref().is_some_and(|p| p.small_merchant),
            has_open_mentoring_need: store::has_open_mentoring_need(&mut tx, company_id).await?,
        };
        let planned = case::plan(needs, standing);

        let case_id = Uuid::now_v7();
        let opened = IntakeEvent::CaseOpened;
        store::insert_case(&mut tx, case_id, company_id).await?;
        store::add_timeline_entry(
            &mut tx,
            &NewEntry {
                case_id,
                need_id: None,
                service: SERVICE_NAME,
                kind: opened.name(),
                summary: &format!("Case opened with {} need(s)", planned.len()),
                at: None,
                source_event: None,
                agency_only: None,
            },
        )
        .await?;
        let snapshot = snapshot(&company);
        let mut need_ids = Vec::with_capacity(planned.len());
        let mut need_events = Vec::with_capacity(planned.len());
        for (position, need) in planned.iter().enumerate() {
            let (need_id, event) =
                needs::open_need(&mut tx, case_id, position, need, &snapshot).await?;
            need_ids.push(need_id);
            need_events.push(event);
        }
        let case = store::load_case(&mut tx, case_id)
            .await?
            .ok_or_else(|| vanished("case"))?;
        let mut new_events = vec![NewEvent::new(
            opened,
            case_id,
            &pb::CaseOpened {
                case_id: case_id.to_string(),
                company_id: company_id.to_string(),
                need_ids: need_ids.iter().map(Uuid::to_string).collect(),
            },
        )];
        new_events.extend(need_events);
        events::append_all(&mut tx, new_events).await?;
        key.record(&mut tx, &case, &company_id.to_string()).await?;
        tx.commit().await?;
        tracing::info!(case_id = %case_id, needs = planned.len(), "case opened");
        Ok(case)
    }

    pub(super) async fn get_case(
        &self,
        caller: Caller,
        request: pb::GetCaseRequest,
    ) -> ApiResult<pb::Case> {
        caller.require(READERS)?;
        let case_id = parse_id("case_id", &request.case_id)?;
        let mut conn = self.pool.acquire().await?;
        access::case_view(&mut conn, &caller, case_id).await?;
        let case = store::load_case(&mut conn, case_id)
            .await?
            .ok_or_else(|| ApiError::not_found("case", case_id))?;
        Ok(access::present_case(&caller, case))
    }

    pub(super) async fn list_cases(
        &self,
        caller: Caller,
        request: pb::ListCasesRequest,
    ) -> ApiResult<pb::ListCasesResponse> {
        caller.require(READERS)?;
        let CaseQuery { filter, page } = CaseQuery::try_from(&request)?;
        let partner = access::listing_partner(&caller);
        let mut conn = self.pool.acquire().await?;
        let mut rows = store::list_cases(&mut conn, &filter, partner.as_ref(), &page).await?;
        let next_page_token = page.finish(&mut rows, |(id, _)| *id);
        Ok(pb::ListCasesResponse {
            cases: rows
                .into_iter()
                .map(|(_, case)| access::present_case(&caller, case))
                .collect(),
            next_page_token,
        })
    }
}
