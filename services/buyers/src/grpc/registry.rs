//! The buyer registry: registering buyers, reading and listing them.

use onestop_contracts::buyers::v1 as pb;
use onestop_platform::error::parse_id;
use onestop_platform::idempotency::IdempotencyKey;
use onestop_platform::{ApiError, ApiResult, Caller, Role};

use super::{BuyersApi, READERS, REGISTRARS, check_office, listed_office};
use crate::access;
use crate::domain::buyer::{BuyerQuery, NewBuyer};
use crate::registry::{self, Registered, already_registered};
use crate::store::{self, Detail, Lock};

/// Contacts are for the office that found the buyer and for admins.
fn redact_buyer(caller: &Caller, mut buyer: pb::Buyer) -> pb::Buyer {
    if !matches!(caller.role, Role::TradeOffice | Role::Admin)
        && let Some(profile) = buyer.profile.as_mut()
    {
        profile.contacts.clear();
    }
    buyer
}

/// A trade office names no other office than its own.
fn check_own_office(caller: &Caller, requested: &str, refusal: &str) -> ApiResult<()> {
    match caller.tenant_for(Role::TradeOffice) {
        Some(own) if !requested.is_empty() && requested != own => {
            Err(ApiError::PermissionDenied(refusal.into()))
        }
        _ => Ok(()),
    }
}

impl BuyersApi {
    pub(super) async fn register_buyer(
        &self,
        caller: Caller,
        mut request: pb::RegisterBuyerRequest,
    ) -> ApiResult<pb::Buyer> {
        caller.require(REGISTRARS)?;
        let key =
            IdempotencyKey::new(&caller, "RegisterBuyer", &request.idempotency_key, &request)?;
        check_own_office(
            &caller,
            &request.trade_office_id,
            "a trade office registers buyers for its own office only",
        )?;
        if let Some(own) = caller.tenant_for(Role::TradeOffice) {
            own.clone_into(&mut request.trade_office_id);
        }
        let NewBuyer {
            trade_office_id,
            profile,
        } = NewBuyer::try_from(&request)?;
        let now = self.clock.now();
        match registry::register_buyer(&self.pool, Some(&key), &trade_office_id, &profile, now)
            .await?
        {
            Registered::New(buyer) => Ok(*buyer),
            Registered::Existing(existing) => Err(already_registered(existing)),
        }
    }

    pub(super) async fn get_buyer(
        &self,
        caller: Caller,
        request: pb::GetBuyerRequest,
    ) -> ApiResult<pb::Buyer> {
        caller.require(READERS)?;
        let id = parse_id("buyer_id", &request.buyer_id)?;
        let mut conn = self.pool.acquire().await?;
        let buyer = store::load_buyer(&mut conn, id, Lock::None, Detail::Full, self.clock.now())
            .await?
            .ok_or_else(|| ApiError::not_found("buyer", id))?;
        check_office(&caller, &buyer.trade_office_id, "buyer", id)?;
        let buyer = access::present_vetting(&caller, redact_buyer(&caller, buyer));
        let shown = buyer
            .profile
            .as_ref()
            .is_some_and(|profile| !profile.contacts.is_empty());
        access::audit_contacts(&mut conn, "buyer", [(buyer.buyer_id.as_str(), shown)]).await?;
        Ok(buyer)
    }

    pub(super) async fn list_buyers(
        &self,
        caller: Caller,
        request: pb::ListBuyersRequest,
    ) -> ApiResult<pb::ListBuyersResponse> {
        caller.require(READERS)?;
        check_own_office(
            &caller,
            &request.trade_office_id,
            "a trade office lists its own office's buyers only",
        )?;
        let BuyerQuery { mut filter, page } = BuyerQuery::try_from(&request)?;
        filter.office = listed_office(&caller, filter.office);
        let mut conn = self.pool.acquire().await?;
        let mut buyers = store::list_buyers(&mut conn, &filter, &page, self.clock.now()).await?;
        let next_page_token = page.finish(&mut buyers, |(id, _)| *id);
        Ok(pb::ListBuyersResponse {
            buyers: buyers
                .into_iter()
                .map(|(_, b)| access::present_vetting(&caller, redact_buyer(&caller, b)))
                .collect(),
            next_page_token,
        })
    }
}
