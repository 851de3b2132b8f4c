//! The home-doctor cadence: assignments whose next contact is past due.

use onestop_contracts::mentoring::v1 as pb;
use onestop_platform::{ApiResult, Caller};

use super::{MentoringApi, READERS, pinned_to_own};
use crate::domain::cadence::OverdueQuery;
use crate::store;

impl MentoringApi {
    pub(super) async fn list_overdue_contacts(
        &self,
        caller: Caller,
        request: pb::ListOverdueContactsRequest,
    ) -> ApiResult<pb::ListOverdueContactsResponse> {
        caller.require(READERS)?;
        let OverdueQuery { mut filter, page } = OverdueQuery::try_from(&request)?;
        filter.advisor_id = pinned_to_own(&caller, filter.advisor_id);
        let mut conn = self.pool.acquire().await?;
        let mut rows = store::list_overdue(&mut conn, &filter, self.clock.now(), &page).await?;
        let next_page_token = page.finish(&mut rows, |(key, _)| *key);
        Ok(pb::ListOverdueContactsResponse {
            contacts: rows.into_iter().map(|(_, contact)| contact).collect(),
            next_page_token,
        })
    }
}
