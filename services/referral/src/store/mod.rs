//! Referral's SQL, all of it: the directory (agencies, programs and their
//! slots) and referrals with their legs. Entries are stored as their wire
//! message (body) beside the columns that queries filter on.

mod directory;
mod referrals;

pub use directory::*;
pub use referrals::*;

use onestop_contracts::referral::v1::{Availability, ProgramStatus, ReferralStatus};
use onestop_platform::{ApiError, ApiResult};
use prost::Message;

use crate::domain::lifecycle::status_name;

fn decode<M: Message + Default>(bytes: &[u8]) -> ApiResult<M> {
    M::decode(bytes).map_err(|error| ApiError::Internal(anyhow::anyhow!("stored record: {error}")))
}

fn category_name(value: i32) -> String {
    onestop_contracts::common::v1::NeedCategory::try_from(value)
        .map(|c| {
            c.as_str_name()
                .trim_start_matches("NEED_CATEGORY_")
                .to_owned()
        })
        .unwrap_or_default()
}

fn availability_name(value: i32) -> &'static str {
    Availability::try_from(value)
        .unwrap_or(Availability::Unspecified)
        .as_str_name()
        .trim_start_matches("AVAILABILITY_")
}

fn program_status_name(value: i32) -> &'static str {
    ProgramStatus::try_from(value)
        .unwrap_or(ProgramStatus::Unspecified)
        .as_str_name()
        .trim_start_matches("PROGRAM_STATUS_")
}

pub fn referral_status_name(value: i32) -> &'static str {
    status_name(ReferralStatus::try_from(value).unwrap_or(ReferralStatus::Unspecified))
}
