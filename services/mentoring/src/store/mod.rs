//! Mentoring's SQL, all of it, one file per resource: advisors, the
//! companies and needs intake handed over, assignments, the history of
//! advisor changes, the waitlist and requests withdrawn from it, sessions, the contact cadence, the fee
//! ledger and the companies' overdue requests to agencies. Rows map straight onto the wire messages they serve.

mod advisors;
mod assignments;
mod cadence;
mod changes;
mod companies;
mod fees;
mod overdue_requests;
mod sessions;
mod waitlist;
mod withdrawals;

pub use advisors::*;
pub use assignments::*;
pub use cadence::*;
pub use changes::*;
pub use companies::*;
pub use fees::*;
pub use overdue_requests::*;
pub use sessions::*;
pub use waitlist::*;
pub use withdrawals::*;

use onestop_contracts::common::v1::Money;
use onestop_domain::GrowthStage;
use uuid::Uuid;

pub use onestop_platform::db::Lock;

fn money(currency: Option<String>, minor: Option<i64>) -> Option<Money> {
    Some(Money {
        currency_code: currency?,
        amount_minor: minor?,
    })
}

fn stage_proto(stored: &str) -> i32 {
    GrowthStage::from_stored(stored)
        .map(|s| s.to_proto() as i32)
        .unwrap_or_default()
}

/// An optional reference as the wire carries it: empty when unset.
fn id_text(id: Option<Uuid>) -> String {
    id.map(|id| id.to_string()).unwrap_or_default()
}

/// A three-part page key as three nullable query parameters.
fn key_parts<A, B, C>(key: Option<(A, B, C)>) -> (Option<A>, Option<B>, Option<C>) {
    match key {
        Some((a, b, c)) => (Some(a), Some(b), Some(c)),
        None => (None, None, None),
    }
}
