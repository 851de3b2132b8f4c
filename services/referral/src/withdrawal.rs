//! A referral whose need was cancelled at intake is cancelled here, with
//! the same release of the program's slot as CancelReferral.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use onestop_contracts::common::v1::NeedOwner;
use onestop_platform::company_feed::NeedCloser;
use onestop_platform::time::Clock;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::lifecycle::Action;
use crate::grpc::referrals::apply_move;
use crate::store::{self, Lock};

/// The reason the referral carries: the company's own words stay at
/// intake, with the case's partners.
const CANCELLED_AT_INTAKE: &str = "The need was cancelled at intake";

pub struct ReferralCloser {
    pub clock: Arc<dyn Clock>,
}

impl NeedCloser for ReferralCloser {
    fn owner(&self) -> NeedOwner {
        NeedOwner::Referral
    }

    fn close<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        need_id: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let Some(found) = store::referral_by_need(conn, need_id).await? else {
                return Ok(());
            };
            let id = Uuid::parse_str(&found.referral_id)?;
            let Some(mut referral) = store::load_referral(conn, id, Lock::ForUpdate).await? else {
                return Ok(());
            };
            let action = Action::Cancel {
                reason: CANCELLED_AT_INTAKE.to_owned(),
            };
            // Completed, failed or cancelled already: nothing to close.
            if action.check_legal(referral.status).is_err() {
                return Ok(());
            }
            apply_move(conn, id, &mut referral, &action, self.clock.now()).await?;
            Ok(())
        })
    }
}
