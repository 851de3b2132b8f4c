//! The queue of companies waiting for an advisor with a free slot.

use onestop_contracts::mentoring::v1 as pb;
use onestop_platform::Violations;
use onestop_platform::pagination::Page;
use uuid::Uuid;

use super::optional_id;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitlistStatus {
    Waiting,
    Filled,
    Withdrawn,
}

impl WaitlistStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "WAITING",
            Self::Filled => "FILLED",
            Self::Withdrawn => "WITHDRAWN",
        }
    }

    pub fn proto_from_stored(text: &str) -> i32 {
        let status = match text {
            "WAITING" => pb::WaitlistStatus::Waiting,
            "FILLED" => pb::WaitlistStatus::Filled,
            "WITHDRAWN" => pb::WaitlistStatus::Withdrawn,
            _ => pb::WaitlistStatus::Unspecified,
        };
        status as i32
    }
}

/// Where a page of the waitlist continues: (0 for handover successors
/// waiting, 1 for new requests waiting, 2 for filled entries; the time in
/// microseconds, negated for filled entries so the newest come first;
/// entry id).
pub type WaitlistKey = (i32, i64, Uuid);

#[derive(Debug)]
pub struct WaitlistQuery {
    pub status: Option<WaitlistStatus>,
    pub company_id: Option<Uuid>,
    pub page: Page<WaitlistKey>,
}

impl TryFrom<&pb::ListWaitlistRequest> for WaitlistQuery {
    type Error = Violations;
    fn try_from(request: &pb::ListWaitlistRequest) -> Result<Self, Violations> {
        let mut violations = Violations::default();
        let page = Page::parse(request.page_size, &request.page_token, &mut violations);
        let status = match pb::WaitlistStatus::try_from(request.status) {
            Ok(pb::WaitlistStatus::Unspecified) => None,
            Ok(pb::WaitlistStatus::Waiting) => Some(WaitlistStatus::Waiting),
            Ok(pb::WaitlistStatus::Filled) => Some(WaitlistStatus::Filled),
            Ok(pb::WaitlistStatus::Withdrawn) => Some(WaitlistStatus::Withdrawn),
            Err(_) => {
                violations.add("status", "one of WAITING, FILLED, WITHDRAWN");
                None
            }
        };
        let company_id = optional_id("company_id", &request.company_id, &mut violations);
        violations.finish_with(|| {
            Some(WaitlistQuery {
                status,
                company_id,
                page,
            })
        })
    }
}
