//! Intake's SQL, all of it: companies and their contacts, assessments,
//! cases and their needs, the case timeline, the relay's delivery
//! bookkeeping and the cursors on the owners' feeds. Rows map straight onto
//! the wire messages they serve.

mod assessments;
mod cases;
mod companies;
mod delivery;
mod feeds;
mod timeline;

pub use assessments::*;
pub use cases::*;
pub use companies::*;
pub use delivery::*;
pub use feeds::*;
pub use timeline::*;

use onestop_domain::GrowthStage;

/// Whether a read locks the row for the rest of the transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lock {
    None,
    ForUpdate,
}

impl Lock {
    fn clause(self) -> &'static str {
        match self {
            Lock::None => "",
            Lock::ForUpdate => " FOR UPDATE",
        }
    }
}

fn stage_proto(stored: &str) -> i32 {
    GrowthStage::from_stored(stored)
        .map(|s| s.to_proto() as i32)
        .unwrap_or_default()
}
