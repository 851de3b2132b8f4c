//! A buyer search whose need was cancelled at intake closes, and so does
//! every match it proposed that is still open: the company withdrew.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use onestop_contracts::buyers::v1 as pb;
use onestop_contracts::common::v1::NeedOwner;
use onestop_platform::company_feed::NeedCloser;
use onestop_platform::events;
use onestop_platform::time::Clock;
use sqlx::PgConnection;

use crate::domain::lifecycle::MatchStatus;
use crate::grpc::matches::{advanced_event, match_status};
use crate::store::{self, Lock, Transition};

/// Who moved the matches, in their history.
const ACTOR: &str = "intake";

pub struct SearchCloser {
    pub clock: Arc<dyn Clock>,
}

impl NeedCloser for SearchCloser {
    fn owner(&self) -> NeedOwner {
        NeedOwner::Buyers
    }

    fn close<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        need_id: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let Some((search_id, _)) = store::search_by_need(conn, need_id).await? else {
                return Ok(());
            };
            let now = self.clock.now();
            if !store::close_search(conn, search_id, now).await? {
                return Ok(());
            }
            for id in store::lock_open_matches_of_search(conn, search_id).await? {
                let Some(current) = store::load_match(conn, id, Lock::None).await? else {
                    continue;
                };
                let step = Transition {
                    from: match_status(&current)?,
                    to: MatchStatus::ClosedNoDeal,
                    reason: Some(pb::NoDealReason::CompanyWithdrew),
                    actor: ACTOR,
                    note: "The need was cancelled at intake",
                };
                store::move_match(conn, id, &step, now).await?;
                events::append(conn, advanced_event(&current, &step)).await?;
            }
            Ok(())
        })
    }
}
