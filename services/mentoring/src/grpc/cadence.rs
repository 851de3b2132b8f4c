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
        let now = self.clock.now();
        let mut rows = store::list_overdue(&mut conn, &filter, now, &page).await?;
        let next_page_token = page.finish(&mut rows, |(key, _)| *key);
        // The companies' overdue requests ride on the first page only.
        let overdue_requests = if page.after.is_none() {
            store::list_overdue_requests(&mut conn, filter.advisor_id, now, i64::from(page.size))
                .await?
        } else {
            Vec::new()
        };
        Ok(pb::ListOverdueContactsResponse {
            contacts: rows.into_iter().map(|(_, contact)| contact).collect(),
            next_page_token,
            overdue_requests,
        })
    }
}
