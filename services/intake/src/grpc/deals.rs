//! The company's answer on a deal a trade office recorded for it: its
//! confirmation or its dispute, given through the partners that work with
//! it and relayed to buyers, which owns deals. Intake changes nothing of
//! its own here: buyers' deal.confirmed (or deal.disputed) comes back on
//! its feed and moves the need, so the need is DONE only on a confirmed
//! deal, however the confirmation arrived.

use std::time::Duration;

use onestop_contracts::buyers::v1 as buyers_pb;
use onestop_contracts::buyers::v1::buyer_service_client::BuyerServiceClient;
use onestop_contracts::intake::v1 as pb;
use onestop_platform::error::parse_id;
use onestop_platform::limits::{self, MAX_NOTE};
use onestop_platform::{ApiError, ApiResult, Caller, Violations};
use sha2::{Digest, Sha256};
use tonic_types::StatusExt;
use uuid::Uuid;

use super::{IntakeApi, WRITERS};
use crate::access;

/// Longest wait for buyers' answer.
const RELAY_DEADLINE: Duration = Duration::from_secs(5);

/// What the company says about the deal.
enum Answer {
    Confirm,
    Dispute {
        reason: buyers_pb::DealDisputeReason,
        note: String,
    },
}

impl IntakeApi {
    pub(super) async fn confirm_deal(
        &self,
        caller: Caller,
        request: pb::ConfirmDealRequest,
    ) -> ApiResult<buyers_pb::Deal> {
        let company_id = self.speaks_for(&caller, &request.company_id).await?;
        let deal_id = parse_id("deal_id", &request.deal_id)?;
        self.relay(
            &caller,
            &request.idempotency_key,
            company_id,
            deal_id,
            Answer::Confirm,
        )
        .await
    }

    pub(super) async fn dispute_deal(
        &self,
        caller: Caller,
        request: pb::DisputeDealRequest,
    ) -> ApiResult<buyers_pb::Deal> {
        let company_id = self.speaks_for(&caller, &request.company_id).await?;
        let mut violations = Violations::default();
        let deal_id = violations.id("deal_id", &request.deal_id);
        let reason = match buyers_pb::DealDisputeReason::try_from(request.reason) {
            Ok(buyers_pb::DealDisputeReason::Unspecified) | Err(_) => {
                violations.add(
                    "reason",
                    "NO_DEAL, WRONG_VALUE, WRONG_TYPE, WITHDRAWN_BY_BUYER or OTHER",
                );
                None
            }
            Ok(reason) => Some(reason),
        };
        let note = limits::optional_text("note", &request.note, MAX_NOTE, &mut violations);
        if reason == Some(buyers_pb::DealDisputeReason::Other) && note.is_empty() {
            violations.add("note", "required when the reason is OTHER");
        }
        let (deal_id, reason) = violations.finish_with(|| Some((deal_id?, reason?)))?;
        self.relay(
            &caller,
            &request.idempotency_key,
            company_id,
            deal_id,
            Answer::Dispute { reason, note },
        )
        .await
    }

    /// The company, once the caller may speak for it: the partners that
    /// work with it now, services and admins (NOT_FOUND for others, so
    /// nobody learns of a company through its deals).
    async fn speaks_for(&self, caller: &Caller, company_id: &str) -> ApiResult<Uuid> {
        caller.require(WRITERS)?;
        let company_id = parse_id("company_id", company_id)?;
        let mut conn = self.pool.acquire().await?;
        access::company_view(&mut conn, caller, company_id).await?;
        Ok(company_id)
    }

    /// Relays the answer to buyers with a deadline, naming the company so
    /// buyers refuses a deal of another one.
    async fn relay(
        &self,
        caller: &Caller,
        idempotency_key: &str,
        company_id: Uuid,
        deal_id: Uuid,
        answer: Answer,
    ) -> ApiResult<buyers_pb::Deal> {
        let Some(channel) = self.downstreams.buyers.clone() else {
            return Err(ApiError::Unavailable(
                "buyer discovery (ONESTOP_BUYERS_URL) is not configured".into(),
            ));
        };
        let key = relay_key(caller, idempotency_key);
        let mut client =
            BuyerServiceClient::with_interceptor(channel, self.downstreams.credentials.clone());
        let answered = match answer {
            Answer::Confirm => {
                let mut call = tonic::Request::new(buyers_pb::ConfirmDealRequest {
                    idempotency_key: key,
                    deal_id: deal_id.to_string(),
                    company_id: company_id.to_string(),
                });
                call.set_timeout(RELAY_DEADLINE);
                client.confirm_deal(call).await
            }
            Answer::Dispute { reason, note } => {
                let mut call = tonic::Request::new(buyers_pb::DisputeDealRequest {
                    idempotency_key: key,
                    deal_id: deal_id.to_string(),
                    reason: reason as i32,
                    note,
                    company_id: company_id.to_string(),
                });
                call.set_timeout(RELAY_DEADLINE);
                client.dispute_deal(call).await
            }
        };
        answered
            .map(tonic::Response::into_inner)
            .map_err(|status| relayed_error(&status, deal_id))
    }
}

/// The key intake relays under. Buyers keeps idempotency keys per caller,
/// and every relay comes from intake: a digest of the partner's identity
/// and its key keeps two partners' keys apart and within buyers' bound.
fn relay_key(caller: &Caller, idempotency_key: &str) -> String {
    if idempotency_key.is_empty() {
        return String::new();
    }
    let digest = Sha256::digest(
        format!(
            "{}\n{}\n{}\n{idempotency_key}",
            caller.role.as_str(),
            caller.tenant.as_deref().unwrap_or_default(),
            caller.subject
        )
        .as_bytes(),
    );
    format!("intake-{digest:x}")
}

/// Buyers' refusal as intake's own answer; anything else is buyers being
/// unreachable or failing, which a retry with the same key may fix.
fn relayed_error(status: &tonic::Status, deal_id: Uuid) -> ApiError {
    let reason = status
        .get_details_error_info()
        .map(|info| info.reason)
        .unwrap_or_default();
    match (status.code(), reason.as_str()) {
        (tonic::Code::NotFound, _) => ApiError::not_found("deal", deal_id),
        (tonic::Code::FailedPrecondition, "DEAL_CONFIRMED") => ApiError::failed_precondition(
            "DEAL_CONFIRMED",
            format!("deal {deal_id} was confirmed by the company"),
        ),
        (tonic::Code::FailedPrecondition, "DEAL_DISPUTED") => ApiError::failed_precondition(
            "DEAL_DISPUTED",
            format!("deal {deal_id} was disputed by the company"),
        ),
        (tonic::Code::FailedPrecondition, "IDEMPOTENCY_KEY_REUSED") => {
            ApiError::failed_precondition(
                "IDEMPOTENCY_KEY_REUSED",
                "this idempotency key was used for another request",
            )
        }
        (code, _) => {
            tracing::warn!(code = ?code, deal_id = %deal_id, "buyers did not take the company's answer on a deal");
            ApiError::Unavailable(format!(
                "buyer discovery did not take the answer: {code:?}; retry with the same key"
            ))
        }
    }
}
