//! Buyers' part of erasing a company's personal data, on intake's request:
//! its trade-show leads' contacts and every free text about it.

use futures_util::future::BoxFuture;
use onestop_contracts::common::v1::ErasedCount;
use onestop_platform::company_feed::{Eraser, erased};
use sqlx::PgConnection;

use crate::store;

pub struct BuyersEraser;

impl Eraser for BuyersEraser {
    fn erase<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        company_id: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<Vec<ErasedCount>>> {
        Box::pin(async move {
            let done = store::erase_company(conn, company_id).await?;
            Ok(vec![
                erased("lead_contacts", done.lead_contacts),
                erased("lead_notes", done.lead_notes),
                erased("feedback_comments", done.feedback_comments),
                erased("deal_notes", done.deal_notes),
                erased("match_notes", done.match_notes),
                erased("stored_responses", done.stored_responses),
            ])
        })
    }
}
