//! Intake's SQL, all of it: companies and their contacts, assessments,
//! cases and their needs, the case timeline, the relay's delivery
//! bookkeeping, who works with whom, erasures, and partners' webhooks.
//! Rows map straight onto the wire messages they serve.

mod assessments;
mod cases;
mod companies;
mod delivery;
mod erasure;
mod relationships;
mod requests;
mod timeline;
mod webhooks;

pub use assessments::*;
pub use cases::*;
pub use companies::*;
pub use delivery::*;
pub use erasure::*;
pub use relationships::*;
pub use requests::*;
pub use timeline::*;
pub use webhooks::*;

use onestop_domain::GrowthStage;

pub use onestop_platform::db::Lock;

fn stage_proto(stored: &str) -> i32 {
    GrowthStage::from_stored(stored)
        .map(|s| s.to_proto() as i32)
        .unwrap_or_default()
}
