//! Erasure of a company's personal data (its contacts) on request.

use onestop_contracts::event_types::IntakeEvent;
use onestop_contracts::intake::v1 as pb;
use onestop_platform::error::parse_id;
use onestop_platform::events::{self, NewEvent};
use onestop_platform::idempotency;
use onestop_platform::time::to_timestamp;
use onestop_platform::{ApiError, ApiResult, Caller, Role};

use super::IntakeApi;
use super::companies::vanished;
use crate::store::{self, Lock};

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
        let erased = store::erase_contacts(&mut tx, company_id).await?;
        // Stored first responses of RegisterCompany/UpdateCompany repeat the
        // contacts; a retry after erasure must not bring them back.
        idempotency::forget_resource(&mut tx, &company_id.to_string()).await?;
        events::append(
            &mut tx,
            NewEvent::new(
                IntakeEvent::PersonalDataErased,
                company_id,
                &pb::PersonalDataErased {
                    company_id: company_id.to_string(),
                    contacts_erased: erased as u32,
                },
            ),
        )
        .await?;
        let company = store::load_company(&mut tx, company_id, Lock::None)
            .await?
            .ok_or_else(|| vanished("company"))?;
        tx.commit().await?;
        tracing::info!(company_id = %company_id, contacts_erased = erased, "personal data erased");
        Ok(pb::ErasePersonalDataResponse {
            contacts_erased: erased as u32,
            erased_at: company
                .personal_data_erased_at
                .or(Some(to_timestamp(chrono::Utc::now()))),
        })
    }
}
