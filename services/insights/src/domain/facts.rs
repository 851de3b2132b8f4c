//! What each event on the four feeds means for the projections: a list of
//! facts to record, and a line for the ticker. Events insights has no use
//! for give no facts; payloads it cannot decode are skipped (and logged by
//! the caller), never fatal, so one bad event cannot stop a feed.

use chrono::{DateTime, Utc};
use onestop_contracts::buyers::v1 as buyers;
use onestop_contracts::common::v1::{GrowthStage, Money, NeedOwner};
use onestop_contracts::event_types::{BuyersEvent, IntakeEvent, MentoringEvent, ReferralEvent};
use onestop_contracts::events::v1::Event;
use onestop_contracts::intake::v1 as intake;
use onestop_contracts::mentoring::v1 as mentoring;
use onestop_contracts::referral::v1 as referral;
use onestop_platform::time::from_timestamp;
use prost::Name;

use super::money;
use super::short_name;
use super::source::Source;

/// Where an assignment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssignmentStatus {
    Active,
    Handover,
    Ended,
}

impl AssignmentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AssignmentStatus::Active => "ACTIVE",
            AssignmentStatus::Handover => "HANDOVER",
            AssignmentStatus::Ended => "ENDED",
        }
    }
}

/// One referral leg as it stands after the event.
#[derive(Debug, Clone, PartialEq)]
pub struct Leg {
    pub leg_number: i32,
    pub agency_id: String,
    pub program_id: String,
    /// LegStatus name without prefix, e.g. "SLA_BREACHED".
    pub status: String,
    pub sent_at: DateTime<Utc>,
    pub accepted_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Fact {
    // intake
    Company {
        company_id: String,
        province: String,
        stage: String,
    },
    CompanyStage {
        company_id: String,
        stage: String,
    },
    CaseOpened {
        case_id: String,
        company_id: String,
        need_ids: Vec<String>,
        at: DateTime<Utc>,
    },
    NeedOpened {
        need_id: String,
        case_id: String,
        /// NeedOwner name without prefix, e.g. "REFERRAL".
        owner: String,
        company_id: String,
        province: String,
        stage: String,
        at: DateTime<Utc>,
    },
    NeedDelivered {
        need_id: String,
        case_id: String,
        at: DateTime<Utc>,
    },
    NeedStatus {
        need_id: String,
        case_id: String,
        /// NeedStatus name without prefix, e.g. "DONE".
        status: String,
        at: DateTime<Utc>,
    },
    // buyers
    Buyer {
        buyer_id: String,
        trade_office_id: String,
        country: String,
    },
    Vetted {
        event_id: i64,
        buyer_id: String,
        trade_office_id: String,
        /// VettingStatus name without prefix, e.g. "VERIFIED".
        status: String,
        at: DateTime<Utc>,
    },
    Consultation {
        consultation_id: String,
        company_id: String,
        buyer_id: String,
        at: DateTime<Utc>,
    },
    DealRecorded {
        deal_id: String,
        company_id: String,
        buyer_id: String,
        value: Money,
        at: DateTime<Utc>,
    },
    DealConfirmed {
        deal_id: String,
        at: DateTime<Utc>,
    },
    // referral
    Referral {
        referral_id: String,
        province: String,
        legs: Vec<Leg>,
    },
    // mentoring
    Advisor {
        advisor_id: String,
        /// AdvisorKind name without prefix, e.g. "HOME_DOCTOR".
        kind: String,
        region: String,
        capacity: i32,
    },
    AdvisorDeactivated {
        advisor_id: String,
    },
    /// A company's new ACTIVE assignment; it no longer waits.
    Assigned {
        assignment_id: String,
        advisor_id: String,
        company_id: String,
    },
    AssignmentMoved {
        assignment_id: String,
        status: AssignmentStatus,
    },
    Waitlisted {
        entry_id: String,
        company_id: String,
    },
    ContactMade {
        assignment_id: String,
    },
    ContactOverdue {
        assignment_id: String,
        due_at: DateTime<Utc>,
    },
    Fee {
        charge_id: String,
        program_id: String,
        month: String,
        value: Money,
    },
}

/// The ticker's line for an event.
#[derive(Debug, Clone, PartialEq)]
pub struct TickerLine {
    /// The agency a referral-side event concerns.
    pub agency_id: Option<String>,
    pub summary: String,
}

/// Everything one event means.
#[derive(Debug, Default, PartialEq)]
pub struct Meaning {
    pub facts: Vec<Fact>,
    pub ticker: Option<TickerLine>,
}

impl Meaning {
    fn of(facts: Vec<Fact>, summary: impl Into<String>) -> Self {
        Self {
            facts,
            ticker: Some(TickerLine {
                agency_id: None,
                summary: summary.into(),
            }),
        }
    }

    fn for_agency(mut self, agency_id: &str) -> Self {
        if let Some(line) = &mut self.ticker {
            line.agency_id = (!agency_id.is_empty()).then(|| agency_id.to_owned());
        }
        self
    }
}

/// The payload is not the message the event type promises.
#[derive(Debug, thiserror::Error)]
#[error("{event_type} #{event_id}: payload is not {expected}")]
pub struct Undecodable {
    pub event_type: String,
    pub event_id: i64,
    pub expected: String,
}

fn decode<M: prost::Message + Name + Default>(event: &Event) -> Result<M, Undecodable> {
    event
        .payload
        .as_ref()
        .filter(|any| any.type_url == M::type_url())
        .and_then(|any| M::decode(any.value.as_slice()).ok())
        .ok_or_else(|| Undecodable {
            event_type: event.r#type.clone(),
            event_id: event.id,
            expected: M::full_name(),
        })
}

fn at_or(timestamp: Option<&prost_types::Timestamp>, fallback: DateTime<Utc>) -> DateTime<Utc> {
    timestamp.and_then(from_timestamp).unwrap_or(fallback)
}

fn stage_name(value: i32) -> String {
    GrowthStage::try_from(value)
        .ok()
        .filter(|stage| *stage != GrowthStage::Unspecified)
        .map(|stage| short_name(stage.as_str_name(), "GROWTH_STAGE_").to_owned())
        .unwrap_or_default()
}

macro_rules! enum_name {
    ($enum:ty, $value:expr, $prefix:literal) => {
        short_name(
            <$enum>::try_from($value)
                .unwrap_or(<$enum>::Unspecified)
                .as_str_name(),
            $prefix,
        )
        .to_owned()
    };
}

/// What `event` from `source` means; `at` is when it was committed.
pub fn interpret(source: Source, event: &Event) -> Result<Meaning, Undecodable> {
    let at = at_or(event.occurred_at.as_ref(), Utc::now());
    match source {
        Source::Intake => match IntakeEvent::parse(&event.r#type) {
            Some(kind) => intake_event(kind, event, at),
            None => Ok(Meaning::default()),
        },
        Source::Buyers => match BuyersEvent::parse(&event.r#type) {
            Some(kind) => buyers_event(kind, event, at),
            None => Ok(Meaning::default()),
        },
        Source::Referral => match ReferralEvent::parse(&event.r#type) {
            Some(kind) => referral_event(kind, event),
            None => Ok(Meaning::default()),
        },
        Source::Mentoring => match MentoringEvent::parse(&event.r#type) {
            Some(kind) => mentoring_event(kind, event),
            None => Ok(Meaning::default()),
        },
    }
}

fn intake_event(
    kind: IntakeEvent,
    event: &Event,
    at: DateTime<Utc>,
) -> Result<Meaning, Undecodable> {
    Ok(match kind {
        IntakeEvent::CompanyRegistered => {
            let p: intake::CompanyRegistered = decode(event)?;
            let stage = stage_name(p.stage);
            let summary = format!("{} {stage}", p.region);
            Meaning::of(
                vec![Fact::Company {
                    company_id: p.company_id,
                    province: p.region,
                    stage,
                }],
                summary,
            )
        }
        IntakeEvent::CompanyStageChanged => {
            let p: intake::CompanyStageChanged = decode(event)?;
            let (from, to) = (stage_name(p.from), stage_name(p.to));
            Meaning::of(
                vec![Fact::CompanyStage {
                    company_id: p.company_id,
                    stage: to.clone(),
                }],
                format!("{from} -> {to}"),
            )
        }
        IntakeEvent::CompanyAssessed => {
            let p: intake::CompanyAssessed = decode(event)?;
            let stage = stage_name(p.stage);
            let summary = format!("score {} {stage}", p.score);
            Meaning::of(
                vec![Fact::CompanyStage {
                    company_id: p.company_id,
                    stage,
                }],
                summary,
            )
        }
        IntakeEvent::CaseOpened => {
            let p: intake::CaseOpened = decode(event)?;
            let summary = format!("{} need(s)", p.need_ids.len());
            Meaning::of(
                vec![Fact::CaseOpened {
                    case_id: p.case_id,
                    company_id: p.company_id,
                    need_ids: p.need_ids,
                    at,
                }],
                summary,
            )
        }
        IntakeEvent::NeedOpened => {
            let p: intake::NeedOpened = decode(event)?;
            let hand_off = p.hand_off.unwrap_or_default();
            let company = hand_off.company.unwrap_or_default();
            let owner = enum_name!(NeedOwner, hand_off.owner, "NEED_OWNER_");
            let category = enum_name!(
                onestop_contracts::common::v1::NeedCategory,
                hand_off.category,
                "NEED_CATEGORY_"
            );
            let summary = format!("{category} -> {owner} {}", company.region);
            Meaning::of(
                vec![Fact::NeedOpened {
                    need_id: hand_off.need_id,
                    case_id: hand_off.case_id,
                    owner,
                    company_id: company.company_id,
                    province: company.region,
                    stage: stage_name(company.stage),
                    at: at_or(hand_off.opened_at.as_ref(), at),
                }],
                summary,
            )
        }
        IntakeEvent::NeedDelivered => {
            let p: intake::NeedDelivered = decode(event)?;
            let summary = enum_name!(NeedOwner, p.owner, "NEED_OWNER_");
            Meaning::of(
                vec![Fact::NeedDelivered {
                    need_id: p.need_id,
                    case_id: p.case_id,
                    at,
                }],
                summary,
            )
        }
        IntakeEvent::NeedStatusChanged => {
            let p: intake::NeedStatusChanged = decode(event)?;
            let status = enum_name!(intake::NeedStatus, p.to, "NEED_STATUS_");
            let summary = format!("{status} ({})", p.cause);
            Meaning::of(
                vec![Fact::NeedStatus {
                    need_id: p.need_id,
                    case_id: p.case_id,
                    status,
                    at,
                }],
                summary,
            )
        }
        IntakeEvent::CompanyUpdated
        | IntakeEvent::CaseClosed
        | IntakeEvent::PersonalDataErased
        | IntakeEvent::PartnerChanged
        | IntakeEvent::NeedDeliveryRetried
        | IntakeEvent::RequestRaised
        | IntakeEvent::RequestEscalated
        | IntakeEvent::RequestAnswered
        | IntakeEvent::RequestOverdue
        | IntakeEvent::WebhookRegistered
        | IntakeEvent::WebhookSecretRotated
        | IntakeEvent::WebhookDisabled
        | IntakeEvent::WebhookEnabled
        | IntakeEvent::WebhookDeleted => Meaning::of(Vec::new(), ""),
    })
}

fn buyers_event(
    kind: BuyersEvent,
    event: &Event,
    at: DateTime<Utc>,
) -> Result<Meaning, Undecodable> {
    Ok(match kind {
        BuyersEvent::BuyerRegistered => {
            let p: buyers::BuyerRegistered = decode(event)?;
            let summary = format!("{} {}", p.trade_office_id, p.country);
            Meaning::of(
                vec![Fact::Buyer {
                    buyer_id: p.buyer_id,
                    trade_office_id: p.trade_office_id,
                    country: p.country,
                }],
                summary,
            )
        }
        BuyersEvent::BuyerVetted => {
            let p: buyers::BuyerVetted = decode(event)?;
            let status = enum_name!(buyers::VettingStatus, p.status, "VETTING_STATUS_");
            let summary = format!("{} {status} ({})", p.trade_office_id, p.quality_score);
            Meaning::of(
                vec![Fact::Vetted {
                    event_id: event.id,
                    buyer_id: p.buyer_id,
                    trade_office_id: p.trade_office_id,
                    status,
                    at,
                }],
                summary,
            )
        }
        BuyersEvent::ConsultationBooked => {
            let p: buyers::ConsultationBooked = decode(event)?;
            let summary = p.buyer_time_zone.clone();
            Meaning::of(
                vec![Fact::Consultation {
                    consultation_id: p.consultation_id,
                    company_id: p.company_id,
                    buyer_id: p.buyer_id,
                    at,
                }],
                summary,
            )
        }
        BuyersEvent::DealRecorded => {
            let p: buyers::DealRecorded = decode(event)?;
            let value = p.value.unwrap_or_default();
            let summary = format!(
                "{} {}",
                enum_name!(buyers::DealType, p.deal_type, "DEAL_TYPE_"),
                money::display(&value.currency_code, value.amount_minor)
            );
            Meaning::of(
                vec![Fact::DealRecorded {
                    deal_id: p.deal_id,
                    company_id: p.company_id,
                    buyer_id: p.buyer_id,
                    value,
                    at,
                }],
                summary,
            )
        }
        BuyersEvent::DealConfirmed => {
            let p: buyers::DealConfirmed = decode(event)?;
            Meaning::of(
                vec![Fact::DealConfirmed {
                    deal_id: p.deal_id,
                    at,
                }],
                "",
            )
        }
        BuyersEvent::MatchProposed => {
            let p: buyers::MatchProposed = decode(event)?;
            Meaning::of(Vec::new(), format!("{} #{}", p.buyer_country, p.rank))
        }
        BuyersEvent::MatchAdvanced => {
            let p: buyers::MatchAdvanced = decode(event)?;
            Meaning::of(
                Vec::new(),
                enum_name!(buyers::MatchStatus, p.to, "MATCH_STATUS_"),
            )
        }
        BuyersEvent::SampleCertificationGap => {
            let p: buyers::SampleCertificationGap = decode(event)?;
            Meaning::of(Vec::new(), format!("{} {}", p.certification, p.country))
        }
        BuyersEvent::MarketAccepted => {
            let p: buyers::MarketRecommendationAccepted = decode(event)?;
            Meaning::of(Vec::new(), p.country)
        }
        BuyersEvent::FollowUpCompleted => {
            let p: buyers::TradeShowFollowUpCompleted = decode(event)?;
            Meaning::of(
                Vec::new(),
                format!("{} of {} leads converted", p.converted, p.leads),
            )
        }
        BuyersEvent::SampleStarted
        | BuyersEvent::SampleFeedback
        | BuyersEvent::FollowUpDue
        | BuyersEvent::LeadReactivation
        | BuyersEvent::DealDisputed
        | BuyersEvent::DealConfirmationDue
        | BuyersEvent::PersonalDataErased => Meaning::of(Vec::new(), ""),
    })
}

fn referral_event(kind: ReferralEvent, event: &Event) -> Result<Meaning, Undecodable> {
    Ok(match kind {
        ReferralEvent::AgencyUpserted => {
            let p: referral::Agency = decode(event)?;
            Meaning::of(Vec::new(), p.short_name).for_agency(&p.agency_id)
        }
        ReferralEvent::ProgramUpserted => {
            let p: referral::Program = decode(event)?;
            Meaning::of(Vec::new(), p.program_id).for_agency(&p.agency_id)
        }
        ReferralEvent::ProgramCapacityChanged => {
            let p: referral::ProgramCapacityChanged = decode(event)?;
            let summary = format!("{} {}/{}", p.program_id, p.slots_in_use, p.total_slots);
            Meaning::of(Vec::new(), summary).for_agency(&p.agency_id)
        }
        _ => {
            let p: referral::Referral = decode(event)?;
            let fallback = p
                .created_at
                .as_ref()
                .and_then(from_timestamp)
                .unwrap_or_else(Utc::now);
            let legs: Vec<Leg> = p
                .legs
                .iter()
                .map(|leg| Leg {
                    leg_number: leg.leg_number as i32,
                    agency_id: leg.agency_id.clone(),
                    program_id: leg.program_id.clone(),
                    status: enum_name!(referral::LegStatus, leg.status, "LEG_STATUS_"),
                    sent_at: at_or(leg.sent_at.as_ref(), fallback),
                    accepted_at: leg.accepted_at.as_ref().and_then(from_timestamp),
                })
                .collect();
            let province = p.company.map(|c| c.region).unwrap_or_default();
            let current = legs.last().cloned();
            let summary = match &current {
                Some(leg) => format!("{} {province}", leg.program_id),
                None => province.clone(),
            };
            let agency = current.map(|leg| leg.agency_id).unwrap_or_default();
            Meaning::of(
                vec![Fact::Referral {
                    referral_id: p.referral_id,
                    province,
                    legs,
                }],
                summary,
            )
            .for_agency(&agency)
        }
    })
}

fn mentoring_event(kind: MentoringEvent, event: &Event) -> Result<Meaning, Undecodable> {
    Ok(match kind {
        MentoringEvent::AdvisorRegistered => {
            let p: mentoring::AdvisorRegistered = decode(event)?;
            let kind = enum_name!(mentoring::AdvisorKind, p.kind, "ADVISOR_KIND_");
            let summary = format!("{kind} {} x{}", p.region, p.capacity);
            Meaning::of(
                vec![Fact::Advisor {
                    advisor_id: p.advisor_id,
                    kind,
                    region: p.region,
                    capacity: p.capacity.min(i32::MAX as u32) as i32,
                }],
                summary,
            )
        }
        MentoringEvent::AdvisorUpdated => {
            let p: mentoring::AdvisorUpdated = decode(event)?;
            let kind = enum_name!(mentoring::AdvisorKind, p.kind, "ADVISOR_KIND_");
            let summary = format!("{} {}", p.changed_fields.join(" "), p.capacity);
            Meaning::of(
                vec![Fact::Advisor {
                    advisor_id: p.advisor_id,
                    kind,
                    region: p.region,
                    capacity: p.capacity.min(i32::MAX as u32) as i32,
                }],
                summary,
            )
        }
        MentoringEvent::AdvisorDeactivated => {
            let p: mentoring::AdvisorDeactivated = decode(event)?;
            let summary = format!("{} handover(s)", p.handover_assignment_ids.len());
            Meaning::of(
                vec![Fact::AdvisorDeactivated {
                    advisor_id: p.advisor_id,
                }],
                summary,
            )
        }
        MentoringEvent::AssignmentCreated => {
            let p: mentoring::AssignmentCreated = decode(event)?;
            let summary = format!("score {:.2}", p.score);
            Meaning::of(
                vec![Fact::Assigned {
                    assignment_id: p.assignment_id,
                    advisor_id: p.advisor_id,
                    company_id: p.company_id,
                }],
                summary,
            )
        }
        MentoringEvent::AssignmentWaitlisted => {
            let p: mentoring::AssignmentWaitlisted = decode(event)?;
            let summary = format!("#{}", p.position);
            Meaning::of(
                vec![Fact::Waitlisted {
                    entry_id: p.waitlist_entry_id,
                    company_id: p.company_id,
                }],
                summary,
            )
        }
        MentoringEvent::AssignmentHandoverStarted => {
            let p: mentoring::AssignmentHandoverStarted = decode(event)?;
            Meaning::of(
                vec![Fact::AssignmentMoved {
                    assignment_id: p.outgoing_assignment_id,
                    status: AssignmentStatus::Handover,
                }],
                "",
            )
        }
        MentoringEvent::AssignmentEnded => {
            let p: mentoring::AssignmentEnded = decode(event)?;
            let reason = enum_name!(mentoring::ReassignReason, p.reason, "REASSIGN_REASON_");
            Meaning::of(
                vec![Fact::AssignmentMoved {
                    assignment_id: p.assignment_id,
                    status: AssignmentStatus::Ended,
                }],
                reason,
            )
        }
        MentoringEvent::AssignmentReassigned => {
            let p: mentoring::AssignmentReassigned = decode(event)?;
            Meaning::of(
                Vec::new(),
                enum_name!(mentoring::ReassignReason, p.reason, "REASSIGN_REASON_"),
            )
        }
        MentoringEvent::SessionLogged => {
            let p: mentoring::SessionLogged = decode(event)?;
            let summary = format!(
                "{} {} min",
                enum_name!(mentoring::SessionChannel, p.channel, "SESSION_CHANNEL_"),
                p.minutes
            );
            Meaning::of(
                vec![Fact::ContactMade {
                    assignment_id: p.assignment_id,
                }],
                summary,
            )
        }
        MentoringEvent::ContactOverdue => {
            let p: mentoring::ContactOverdue = decode(event)?;
            let summary = format!("period {}", p.period);
            let due_at = at_or(p.due_at.as_ref(), Utc::now());
            Meaning::of(
                vec![Fact::ContactOverdue {
                    assignment_id: p.assignment_id,
                    due_at,
                }],
                summary,
            )
        }
        MentoringEvent::FeeCharged => {
            let p: mentoring::FeeCharged = decode(event)?;
            let value = p.amount.unwrap_or_default();
            let summary = format!(
                "{} {}",
                p.program_id,
                money::display(&value.currency_code, value.amount_minor)
            );
            Meaning::of(
                vec![Fact::Fee {
                    charge_id: p.charge_id,
                    program_id: p.program_id,
                    month: p.month,
                    value,
                }],
                summary,
            )
        }
        MentoringEvent::PersonalDataErased
        | MentoringEvent::RequestWithdrawn
        | MentoringEvent::CadenceChanged => Meaning::of(Vec::new(), ""),
    })
}
