//! Mentoring's part of erasing a company's personal data, on intake's
//! request: every free text about the company (need details, session
//! topics and follow-up actions, end and change notes) and the stored
//! first responses that repeat them.

use futures_util::future::BoxFuture;
use onestop_contracts::common::v1::ErasedCount;
use onestop_platform::company_feed::{Eraser, erased};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::store;

pub struct MentoringEraser;

impl Eraser for MentoringEraser {
    fn erase<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        company_id: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<Vec<ErasedCount>>> {
        Box::pin(async move {
            // Not a company mentoring could know: nothing to erase.
            let Ok(company_id) = Uuid::parse_str(company_id) else {
                return Ok(Vec::new());
            };
            let done = store::erase_company(conn, company_id).await?;
            Ok(vec![
                erased("need_details", done.need_details),
                erased("session_notes", done.session_notes),
                erased("assignment_notes", done.assignment_notes),
                erased("stored_responses", done.stored_responses),
            ])
        })
    }
}
