//! The waitlist: companies waiting for an advisor with a free slot.

use onestop_contracts::mentoring::v1 as pb;
use onestop_platform::{ApiResult, Caller};

use super::{MentoringApi, OVERSEERS};
use crate::domain::waitlist::WaitlistQuery;
use crate::store;

impl MentoringApi {
    pub(super) async fn list_waitlist(
        &self,
        caller: Caller,
        request: pb::ListWaitlistRequest,
    ) -> ApiResult<pb::ListWaitlistResponse> {
        caller.require(OVERSEERS)?;
        let query = WaitlistQuery::try_from(&request)?;
        let mut conn = self.pool.acquire().await?;
        let mut rows = store::list_waitlist(&mut conn, &query).await?;
        let next_page_token = query.page.finish(&mut rows, |(key, _)| *key);
        Ok(pb::ListWaitlistResponse {
            entries: rows.into_iter().map(|(_, entry)| entry).collect(),
            next_page_token,
        })
    }
}
