//! Requests and complaints a company raises on a case (in a CEO field
//! visit, a consultation, the cyber consultation desk): which agency must
//! answer, by when, and how one moves: OPEN -> ESCALATED (any number of
//! times up to [`MAX_ESCALATIONS`]) -> ANSWERED, which is final. Pure
//! rules and the RPCs' requests, validated.

use chrono::{DateTime, Utc};
use onestop_contracts::intake::v1 as pb;
use onestop_platform::pagination::Page;
use onestop_platform::{Violations, limits};
use uuid::Uuid;

use limits::{MAX_LABEL as MAX_AGENCY_ID, MAX_NOTE};

/// Days an agency has to answer when the caller names none: two weeks, the
/// time a field visit's promise "answered on the spot" may take at most.
pub const DEFAULT_DUE_DAYS: u32 = 14;
/// The longest time to answer a caller may give.
pub const MAX_DUE_DAYS: u32 = 90;
/// Escalations of one request: past this, the answer is owed, not passed on.
pub const MAX_ESCALATIONS: u32 = 3;

macro_rules! stored_enum {
    ($name:ident, $proto:ident, { $($variant:ident => $text:literal),+ $(,)? }) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $($variant),+
        }

        impl $name {
            const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            pub fn from_stored(text: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|value| value.as_str() == text)
            }

            pub fn to_proto(self) -> pb::$proto {
                match self {
                    $($name::$variant => pb::$proto::$variant),+
                }
            }

            /// The value a request names; UNSPECIFIED and unknown numbers
            /// are refused.
            pub fn from_proto(value: i32) -> Result<Self, String> {
                match pb::$proto::try_from(value) {
                    $(Ok(pb::$proto::$variant) => Ok($name::$variant),)+
                    _ => Err(format!(
                        "one of {}",
                        Self::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
                    )),
                }
            }
        }
    };
}

stored_enum!(RequestKind, CaseRequestKind, {
    Request => "REQUEST",
    Complaint => "COMPLAINT",
});

stored_enum!(Raiser, CaseRequestRaiser, {
    Ceo => "CEO",
    CompanyStaff => "COMPANY_STAFF",
    Advisor => "ADVISOR",
    AgencyStaff => "AGENCY_STAFF",
});

stored_enum!(Channel, CaseRequestChannel, {
    FieldVisit => "FIELD_VISIT",
    Consultation => "CONSULTATION",
    CyberConsultation => "CYBER_CONSULTATION",
    Phone => "PHONE",
    Written => "WRITTEN",
});

stored_enum!(RequestState, CaseRequestState, {
    Open => "OPEN",
    Escalated => "ESCALATED",
    Answered => "ANSWERED",
});

impl Channel {
    /// How the timeline says where it was raised.
    pub fn words(self) -> &'static str {
        match self {
            Self::FieldVisit => "in a field visit",
            Self::Consultation => "in a consultation",
            Self::CyberConsultation => "at the cyber consultation desk",
            Self::Phone => "by phone",
            Self::Written => "in writing",
        }
    }
}

impl RequestKind {
    pub fn words(self) -> &'static str {
        match self {
            Self::Request => "Request",
            Self::Complaint => "Complaint",
        }
    }
}

impl RequestState {
    /// Still waiting for an answer.
    pub fn awaits_answer(self) -> bool {
        matches!(self, Self::Open | Self::Escalated)
    }
}

/// Why a request cannot move as asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Answered already: nothing moves it.
    Answered,
    /// Escalated [`MAX_ESCALATIONS`] times.
    EscalationLimit,
}

/// Whether a request at `state` may be answered.
pub fn may_answer(state: RequestState) -> Result<(), Refusal> {
    if state.awaits_answer() {
        Ok(())
    } else {
        Err(Refusal::Answered)
    }
}

/// Whether it may be escalated once more.
pub fn may_escalate(state: RequestState, level: u32) -> Result<(), Refusal> {
    may_answer(state)?;
    if level >= MAX_ESCALATIONS {
        return Err(Refusal::EscalationLimit);
    }
    Ok(())
}

/// An agency id as a caller names one: referral's directory key.
fn agency_id(field: &str, text: &str, required: bool, violations: &mut Violations) -> String {
    let id = text.trim();
    if id.is_empty() {
        if required {
            violations.add(
                field,
                "required: an agency of the directory, e.g. \"kotra\"",
            );
        }
        return String::new();
    }
    if id.len() > MAX_AGENCY_ID || !id.chars().all(|c| c.is_ascii_graphic()) {
        violations.add(
            field,
            format!("at most {MAX_AGENCY_ID} printable ASCII characters"),
        );
        return String::new();
    }
    id.to_owned()
}

fn due_in_days(field: &str, days: u32, violations: &mut Violations) -> u32 {
    match days {
        0 => DEFAULT_DUE_DAYS,
        1..=MAX_DUE_DAYS => days,
        _ => {
            violations.add(
                field,
                format!("0 (meaning {DEFAULT_DUE_DAYS}) to {MAX_DUE_DAYS}"),
            );
            DEFAULT_DUE_DAYS
        }
    }
}

/// RaiseRequest, validated.
#[derive(Debug)]
pub struct NewRequest {
    pub case_id: Uuid,
    pub kind: RequestKind,
    pub raised_by: Raiser,
    pub channel: Channel,
    pub answering_agency_id: String,
    pub summary: String,
    pub due_in_days: u32,
}

impl TryFrom<&pb::RaiseRequestRequest> for NewRequest {
    type Error = Violations;
    fn try_from(request: &pb::RaiseRequestRequest) -> Result<Self, Violations> {
        let mut violations = Violations::default();
        let case_id = violations.id("case_id", &request.case_id);
        let kind = violations.check("kind", RequestKind::from_proto(request.kind));
        let raised_by = violations.check("raised_by", Raiser::from_proto(request.raised_by));
        let channel = violations.check("channel", Channel::from_proto(request.channel));
        let answering_agency_id = agency_id(
            "answering_agency_id",
            &request.answering_agency_id,
            true,
            &mut violations,
        );
        let summary = limits::required_text("summary", &request.summary, MAX_NOTE, &mut violations);
        let due_in_days = due_in_days("due_in_days", request.due_in_days, &mut violations);
        violations.finish_with(|| {
            Some(NewRequest {
                case_id: case_id?,
                kind: kind?,
                raised_by: raised_by?,
                channel: channel?,
                answering_agency_id,
                summary,
                due_in_days,
            })
        })
    }
}

/// AnswerRequest, validated.
#[derive(Debug)]
pub struct Answer {
    pub request_id: Uuid,
    pub answer: String,
}

impl TryFrom<&pb::AnswerRequestRequest> for Answer {
    type Error = Violations;
    fn try_from(request: &pb::AnswerRequestRequest) -> Result<Self, Violations> {
        let mut violations = Violations::default();
        let request_id = violations.id("request_id", &request.request_id);
        let answer = limits::required_text("answer", &request.answer, MAX_NOTE, &mut violations);
        violations.finish_with(|| {
            Some(Answer {
                request_id: request_id?,
                answer,
            })
        })
    }
}

/// EscalateRequest, validated.
#[derive(Debug)]
pub struct Escalation {
    pub request_id: Uuid,
    /// None: the same agency, a level up.
    pub to_agency_id: Option<String>,
    pub reason: String,
    pub due_in_days: u32,
}

impl TryFrom<&pb::EscalateRequestRequest> for Escalation {
    type Error = Violations;
    fn try_from(request: &pb::EscalateRequestRequest) -> Result<Self, Violations> {
        let mut violations = Violations::default();
        let request_id = violations.id("request_id", &request.request_id);
        let to_agency_id = agency_id(
            "to_agency_id",
            &request.to_agency_id,
            false,
            &mut violations,
        );
        let reason = limits::required_text("reason", &request.reason, MAX_NOTE, &mut violations);
        let due_in_days = due_in_days("due_in_days", request.due_in_days, &mut violations);
        violations.finish_with(|| {
            Some(Escalation {
                request_id: request_id?,
                to_agency_id: (!to_agency_id.is_empty()).then_some(to_agency_id),
                reason,
                due_in_days,
            })
        })
    }
}

/// Whose requests a listing shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestScope {
    /// Every request (services, admins, or one company's for whoever may
    /// read it).
    All,
    /// Those this agency must answer.
    AnsweredBy(String),
    /// Those of the companies this advisor works with.
    AdvisorOf(String),
}

/// ListRequests, validated. Oldest due first: the key is (due date, id).
#[derive(Debug)]
pub struct RequestQuery {
    pub company_id: Option<Uuid>,
    /// The states listed: OPEN and ESCALATED unless one is named.
    pub states: Vec<RequestState>,
    pub page: Page<(DateTime<Utc>, Uuid)>,
}

impl TryFrom<&pb::ListRequestsRequest> for RequestQuery {
    type Error = Violations;
    fn try_from(request: &pb::ListRequestsRequest) -> Result<Self, Violations> {
        let mut violations = Violations::default();
        let page = Page::parse(request.page_size, &request.page_token, &mut violations);
        let company_id = (!request.company_id.is_empty())
            .then(|| violations.id("company_id", &request.company_id))
            .flatten();
        let states = if request.state == pb::CaseRequestState::Unspecified as i32 {
            vec![RequestState::Open, RequestState::Escalated]
        } else {
            violations
                .check("state", RequestState::from_proto(request.state))
                .into_iter()
                .collect()
        };
        violations.finish_with(|| {
            Some(RequestQuery {
                company_id,
                states,
                page,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answered_is_final_and_escalations_are_bounded() {
        assert_eq!(may_answer(RequestState::Open), Ok(()));
        assert_eq!(may_answer(RequestState::Escalated), Ok(()));
        assert_eq!(may_answer(RequestState::Answered), Err(Refusal::Answered));
        assert_eq!(may_escalate(RequestState::Open, 0), Ok(()));
        assert_eq!(
            may_escalate(RequestState::Escalated, MAX_ESCALATIONS),
            Err(Refusal::EscalationLimit)
        );
        assert_eq!(
            may_escalate(RequestState::Answered, 0),
            Err(Refusal::Answered)
        );
    }

    #[test]
    fn stored_values_read_back() {
        for state in RequestState::ALL {
            assert_eq!(RequestState::from_stored(state.as_str()), Some(*state));
        }
        for channel in Channel::ALL {
            assert_eq!(Channel::from_stored(channel.as_str()), Some(*channel));
        }
        assert!(RequestKind::from_proto(0).is_err());
        assert!(Raiser::from_proto(99).is_err());
    }

    #[test]
    fn due_dates_default_to_two_weeks_and_are_bounded() {
        let mut violations = Violations::default();
        assert_eq!(due_in_days("d", 0, &mut violations), DEFAULT_DUE_DAYS);
        assert_eq!(due_in_days("d", 90, &mut violations), 90);
        assert!(violations.is_empty());
        due_in_days("d", 91, &mut violations);
        assert_eq!(violations.fields().collect::<Vec<_>>(), vec!["d"]);
    }
}
