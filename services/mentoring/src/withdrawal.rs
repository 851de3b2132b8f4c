//! An advisor request whose need was cancelled at intake is withdrawn: a
//! waiting company leaves the waitlist; an advisor already assigned stays,
//! because the relationship is meant to outlast any one case.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use onestop_contracts::common::v1::NeedOwner;
use onestop_contracts::event_types::MentoringEvent;
use onestop_contracts::mentoring::v1 as pb;
use onestop_platform::company_feed::NeedCloser;
use onestop_platform::events::{self, NewEvent};
use onestop_platform::time::Clock;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::store;

pub struct RequestCloser {
    pub clock: Arc<dyn Clock>,
}

impl NeedCloser for RequestCloser {
    fn owner(&self) -> NeedOwner {
        NeedOwner::Mentoring
    }

    fn close<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        need_id: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let Ok(need) = Uuid::parse_str(need_id) else {
                return Ok(());
            };
            let Some(withdrawn) = store::withdraw_request(conn, need, self.clock.now()).await?
            else {
                return Ok(());
            };
            events::append(
                conn,
                NewEvent::new(
                    MentoringEvent::RequestWithdrawn,
                    withdrawn.company_id,
                    &pb::AdvisorRequestWithdrawn {
                        need_id: need.to_string(),
                        case_id: withdrawn.case_id.to_string(),
                        company_id: withdrawn.company_id.to_string(),
                        left_waitlist: withdrawn.left_waitlist,
                        assignment_id: withdrawn
                            .assignment_id
                            .map(|id| id.to_string())
                            .unwrap_or_default(),
                    },
                ),
            )
            .await?;
            Ok(())
        })
    }
}
