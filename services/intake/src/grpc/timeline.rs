//! The case timeline: every step of a case across the services.

use onestop_contracts::intake::v1 as pb;
use onestop_platform::{ApiResult, Caller};

use super::{IntakeApi, READERS};
use crate::access;
use crate::domain::case::TimelineQuery;
use crate::store;

impl IntakeApi {
    pub(super) async fn get_case_timeline(
        &self,
        caller: Caller,
        request: pb::GetCaseTimelineRequest,
    ) -> ApiResult<pb::CaseTimeline> {
        caller.require(READERS)?;
        let TimelineQuery { case_id, page } = TimelineQuery::try_from(&request)?;
        let mut conn = self.pool.acquire().await?;
        access::case_view(&mut conn, &caller, case_id).await?;
        let partner = access::listing_partner(&caller);
        let mut rows = store::timeline(&mut conn, case_id, partner.as_ref(), &page).await?;
        let next_page_token = page.finish(&mut rows, |(key, _)| *key);
        Ok(pb::CaseTimeline {
            case_id: case_id.to_string(),
            entries: rows.into_iter().map(|(_, entry)| entry).collect(),
            next_page_token,
        })
    }
}
