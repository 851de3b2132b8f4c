//! Erasure of a company's personal data on request: intake's contacts and
//! free text at once, the owners' parts as they report them on their feeds.

use onestop_contracts::common::v1::ErasedCount;
use onestop_contracts::event_types::IntakeEvent;
use onestop_contracts::intake::v1 as pb;
use onestop_domain::NeedOwner;
use onestop_platform::company_feed::erased;
use onestop_platform::error::parse_id;
use onestop_platform::events::{self, NewEvent};
use onestop_platform::idempotency;
use onestop_platform::{ApiError, ApiResult, Caller, Role};

use super::IntakeApi;
use crate::domain::owner_events::feed_name;
use crate::startup::SERVICE_NAME;
use crate::store::{self, Lock};

/// The services that hold something about a company besides intake.
const OWNERS: [NeedOwner; 3] = [NeedOwner::Mentoring, NeedOwner::Buyers, NeedOwner::Referral];

impl IntakeApi {
    pub(super) async fn erase_personal_data(
        &self,
        caller: Caller,
        request: pb::ErasePersonalDataRequest,
    ) -> ApiResult<pb::ErasePersonalDataResponse> {
        caller.require(&[Role::Admin])?;
        let company_id = parse_id("company_id", &request.company_id)?;
        let mut tx = self.pool.begin().await?;
        if store::load_company(&mut tx, company_id, Lock::ForUpdate)
            .await?
            .is_none()
        {
            return Err(ApiError::not_found("company", company_id));
        }
        let contacts = store::erase_contacts(&mut tx, company_id).await?;
        let details = store::erase_need_details(&mut tx, company_id).await?;
        let outcomes = store::erase_case_outcomes(&mut tx, company_id).await?;
        let requests = store::erase_request_texts(&mut tx, company_id).await?;
        // Stored first responses of RegisterCompany, UpdateCompany and
        // OpenCase repeat contacts and details; a retry after erasure must
        // not bring them back.
        let responses = idempotency::forget_resource(&mut tx, &company_id.to_string()).await?;
        let intake_erased: Vec<ErasedCount> = vec![
            erased("contacts", contacts),
            erased("need_details", details),
            erased("case_outcomes", outcomes),
            erased("request_texts", requests),
            erased("stored_responses", responses),
        ];
        let now: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("SELECT now()")
            .fetch_one(&mut *tx)
            .await?;
        store::request_erasure(&mut tx, company_id, SERVICE_NAME, now).await?;
        store::record_erased(&mut tx, company_id, SERVICE_NAME, &intake_erased, now).await?;
        for owner in OWNERS {
            store::request_erasure(&mut tx, company_id, feed_name(owner), now).await?;
        }
        events::append(
            &mut tx,
            NewEvent::new(
                IntakeEvent::PersonalDataErased,
                company_id,
                &pb::PersonalDataErased {
                    company_id: company_id.to_string(),
                    contacts_erased: contacts as u32,
                    erased: intake_erased,
                },
            ),
        )
        .await?;
        let status = store::erasure_status(&mut tx, company_id)
            .await?
            .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("erasure vanished")))?;
        tx.commit().await?;
        tracing::info!(company_id = %company_id, contacts_erased = contacts, need_details_erased = details, "personal data erased");
        Ok(pb::ErasePersonalDataResponse {
            contacts_erased: contacts as u32,
            erased_at: status.requested_at,
            services: status.services,
        })
    }

    pub(super) async fn get_erasure_status(
        &self,
        caller: Caller,
        request: pb::GetErasureStatusRequest,
    ) -> ApiResult<pb::ErasureStatus> {
        caller.require(&[Role::Admin])?;
        let company_id = parse_id("company_id", &request.company_id)?;
        let mut conn = self.pool.acquire().await?;
        store::erasure_status(&mut conn, company_id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no erasure of company {company_id}")))
    }
}
