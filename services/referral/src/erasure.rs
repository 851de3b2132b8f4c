//! Referral's part of erasing a company's personal data, on intake's
//! request: the free text of its referrals (need detail, leg and outcome
//! notes, cancel reasons) and the stored first responses that repeat it.

use futures_util::future::BoxFuture;
use onestop_contracts::common::v1::ErasedCount;
use onestop_platform::company_feed::{Eraser, erased};
use onestop_platform::idempotency;
use sqlx::PgConnection;

use crate::domain::referral::without_free_text;
use crate::store;

pub struct ReferralEraser;

impl Eraser for ReferralEraser {
    fn erase<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        company_id: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<Vec<ErasedCount>>> {
        Box::pin(async move {
            let referrals = store::lock_referrals_of_company(conn, company_id).await?;
            let (mut texts, mut responses) = (0, 0);
            for (id, referral) in referrals {
                let blank = without_free_text(referral.clone());
                if blank != referral {
                    store::store_body(conn, id, &blank).await?;
                    texts += 1;
                }
                responses += idempotency::forget_resource(conn, &id.to_string()).await?;
            }
            Ok(vec![
                erased("referral_texts", texts),
                erased("stored_responses", responses),
            ])
        })
    }
}
