//! Registering a buyer: the one path both RegisterBuyer and the CSV import
//! take, so both apply the same rules and raise the same event.

use chrono::{DateTime, Utc};
use onestop_contracts::buyers::v1 as pb;
use onestop_contracts::event_types::BuyersEvent;
use onestop_platform::error::is_unique_violation;
use onestop_platform::events::{self, NewEvent, Partner};
use onestop_platform::idempotency::IdempotencyKey;
use onestop_platform::{ApiError, ApiResult};
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::buyer::BuyerProfile;
use crate::store::{self, Detail, Lock};

/// The result of registering one buyer.
pub enum Registered {
    New(Box<pb::Buyer>),
    /// The office already has a buyer with this external reference.
    Existing(Uuid),
}

/// ALREADY_EXISTS naming the buyer the office registered first.
pub fn already_registered(existing: Uuid) -> ApiError {
    ApiError::AlreadyExists {
        reason: "BUYER_EXISTS",
        message: format!("this office already registered the buyer as {existing}"),
        metadata: vec![("buyer_id", existing.to_string())],
    }
}

/// Stores a validated buyer for `office` with its event, unless the office
/// already has one with the same external reference. `key` makes an API
/// call's retries return the first result; the import passes none, its
/// rows are recognised by their reference.
pub async fn register_buyer(
    pool: &PgPool,
    key: Option<&IdempotencyKey>,
    office: &str,
    profile: &BuyerProfile,
    now: DateTime<Utc>,
) -> ApiResult<Registered> {
    let mut tx = pool.begin().await?;
    if let Some(key) = key
        && let Some(first) = key.replay::<pb::Buyer>(&mut tx).await?
    {
        return Ok(Registered::New(Box::new(first)));
    }
    if let Some(reference) = &profile.external_ref
        && let Some(existing) = store::buyer_id_by_external_ref(&mut tx, office, reference).await?
    {
        return Ok(Registered::Existing(existing));
    }
    let id = Uuid::now_v7();
    if let Err(error) = store::insert_buyer(&mut tx, id, office, profile, now).await {
        // A concurrent registration of the same reference won the race.
        if is_unique_violation(&error)
            && let Some(reference) = &profile.external_ref
        {
            drop(tx);
            let mut conn = pool.acquire().await?;
            if let Some(existing) =
                store::buyer_id_by_external_ref(&mut conn, office, reference).await?
            {
                return Ok(Registered::Existing(existing));
            }
        }
        return Err(error.into());
    }
    events::append(
        &mut tx,
        NewEvent::new(
            BuyersEvent::BuyerRegistered,
            id,
            &pb::BuyerRegistered {
                buyer_id: id.to_string(),
                trade_office_id: office.to_owned(),
                country: profile.country.as_str().to_owned(),
                hs_codes: profile
                    .hs_codes
                    .iter()
                    .map(|c| c.as_str().to_owned())
                    .collect(),
                languages: profile
                    .languages
                    .iter()
                    .map(|c| c.as_str().to_owned())
                    .collect(),
            },
        )
        .for_partners([Partner::trade_office(office)]),
    )
    .await?;
    let buyer = store::load_buyer(&mut tx, id, Lock::None, Detail::Full, now)
        .await?
        .ok_or_else(|| store::vanished("buyer"))?;
    if let Some(key) = key {
        key.record(&mut tx, &buyer, &id.to_string()).await?;
    }
    tx.commit().await?;
    tracing::info!(buyer_id = %id, trade_office_id = office, "buyer registered");
    Ok(Registered::New(Box::new(buyer)))
}
