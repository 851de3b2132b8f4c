//! Vetting: a trade office's (or an admin's) decision on a buyer, kept as
//! history; only a fresh VERIFIED decision makes a buyer matchable.

use onestop_contracts::buyers::v1 as pb;
use onestop_contracts::event_types::BuyersEvent;
use onestop_platform::events::{self, NewEvent, Partner};
use onestop_platform::idempotency::IdempotencyKey;
use onestop_platform::{ApiError, ApiResult, Caller, Role};

use super::{BuyersApi, REGISTRARS, check_office};
use crate::domain::buyer::Vetting;
use crate::store::{self, Detail, Lock};

impl BuyersApi {
    pub(super) async fn vet_buyer(
        &self,
        caller: Caller,
        request: pb::VetBuyerRequest,
    ) -> ApiResult<pb::Buyer> {
        caller.require(REGISTRARS)?;
        let key = IdempotencyKey::new(&caller, "VetBuyer", &request.idempotency_key, &request)?;
        let Vetting {
            buyer_id: id,
            decision,
        } = Vetting::try_from(&request)?;
        let now = self.clock.now();
        let mut tx = self.pool.begin().await?;
        if let Some(first) = key.replay::<pb::Buyer>(&mut tx).await? {
            return Ok(first);
        }
        let current = store::load_buyer(&mut tx, id, Lock::ForUpdate, Detail::Record, now)
            .await?
            .ok_or_else(|| ApiError::not_found("buyer", id))?;
        check_office(&caller, &current.trade_office_id, "buyer", id)?;
        let previous = current
            .vetting
            .as_ref()
            .map(|v| v.status)
            .unwrap_or_default();
        let vetted_by = caller
            .tenant_for(Role::TradeOffice)
            .unwrap_or("admin")
            .to_owned();
        store::record_vetting(&mut tx, id, &decision, &vetted_by, now).await?;
        events::append(
            &mut tx,
            NewEvent::new(
                BuyersEvent::BuyerVetted,
                id,
                &pb::BuyerVetted {
                    buyer_id: id.to_string(),
                    trade_office_id: current.trade_office_id.clone(),
                    status: decision.status.to_proto() as i32,
                    previous_status: previous,
                    quality_score: decision.quality_score,
                    criteria_met: decision.criteria.iter().map(|c| *c as i32).collect(),
                },
            )
            .for_partners([Partner::trade_office(&current.trade_office_id)]),
        )
        .await?;
        let buyer = store::load_buyer(&mut tx, id, Lock::None, Detail::Full, now)
            .await?
            .ok_or_else(|| store::vanished("buyer"))?;
        key.record(&mut tx, &buyer, &id.to_string()).await?;
        tx.commit().await?;
        tracing::info!(buyer_id = %id, status = decision.status.as_str(), "buyer vetted");
        Ok(buyer)
    }
}
