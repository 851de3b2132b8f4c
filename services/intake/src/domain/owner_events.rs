//! What an owner's event means for the case: which need it concerns, the
//! line the company reads on its timeline, how far the need has come, and
//! whether it opens a new need. Pure, so every mapping is testable alone.

use onestop_contracts::buyers::v1 as buyers;
use onestop_contracts::common::v1::CompanyDataErased;
use onestop_contracts::event_types::{BuyersEvent, MentoringEvent, ReferralEvent};
use onestop_contracts::events::v1::Event;
use onestop_contracts::mentoring::v1 as mentoring;
use onestop_contracts::referral::v1 as referral;
use onestop_domain::{NeedCategory, NeedOwner};
use prost::Name;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::case::NeedStatus;
use super::partner::{Partner, Source, State};

/// The events intake follows on mentoring's feed: every step of an
/// assignment.
const MENTORING_FOLLOWED: &[MentoringEvent] = &[
    MentoringEvent::AssignmentCreated,
    MentoringEvent::AssignmentWaitlisted,
    MentoringEvent::AssignmentReassigned,
    MentoringEvent::AssignmentHandoverStarted,
    MentoringEvent::AssignmentEnded,
    MentoringEvent::SessionLogged,
    MentoringEvent::RequestWithdrawn,
    MentoringEvent::PersonalDataErased,
];

/// On buyers' feed: matches, consultations, deals, sample tests and their
/// feedback, markets taken up, trade-show follow-ups completed.
const BUYERS_FOLLOWED: &[BuyersEvent] = &[
    BuyersEvent::MatchProposed,
    BuyersEvent::MatchAdvanced,
    BuyersEvent::ConsultationBooked,
    BuyersEvent::DealRecorded,
    BuyersEvent::DealConfirmed,
    BuyersEvent::DealDisputed,
    BuyersEvent::DealConfirmationDue,
    BuyersEvent::SampleStarted,
    BuyersEvent::SampleFeedback,
    BuyersEvent::SampleCertificationGap,
    BuyersEvent::MarketAccepted,
    BuyersEvent::FollowUpCompleted,
    BuyersEvent::PersonalDataErased,
];

/// On referral's feed: every move of a referral.
const REFERRAL_FOLLOWED: &[ReferralEvent] = &[
    ReferralEvent::Routed,
    ReferralEvent::Unroutable,
    ReferralEvent::Accepted,
    ReferralEvent::Declined,
    ReferralEvent::Rerouted,
    ReferralEvent::SlaBreached,
    ReferralEvent::Started,
    ReferralEvent::Completed,
    ReferralEvent::Failed,
    ReferralEvent::Cancelled,
    ReferralEvent::Exhausted,
    ReferralEvent::PersonalDataErased,
    // The directory's agencies: those a company's request may go to.
    ReferralEvent::AgencyUpserted,
];

/// The name an owner's feed goes by: its `FeedStatus.source`, the
/// timeline's `service` and the key of intake's cursor on it.
pub fn feed_name(owner: NeedOwner) -> &'static str {
    match owner {
        NeedOwner::Mentoring => "mentoring",
        NeedOwner::Buyers => "buyers",
        NeedOwner::Referral => "referral",
    }
}

/// Event types intake follows on `owner`'s feed.
pub fn followed_types(owner: NeedOwner) -> Vec<String> {
    let names: Vec<&str> = match owner {
        NeedOwner::Mentoring => MENTORING_FOLLOWED.iter().map(|e| e.name()).collect(),
        NeedOwner::Buyers => BUYERS_FOLLOWED.iter().map(|e| e.name()).collect(),
        NeedOwner::Referral => REFERRAL_FOLLOWED.iter().map(|e| e.name()).collect(),
    };
    names.into_iter().map(str::to_owned).collect()
}

/// What makes an owner's event the same event when its feed is read again
/// (from the start, after the owner's database was restored): its content,
/// not its position, because a restored or recreated feed numbers its
/// events anew.
pub fn fingerprint(event: &Event) -> String {
    let mut hash = Sha256::new();
    let occurred = event.occurred_at.unwrap_or_default();
    let payload = event.payload.clone().unwrap_or_default();
    for part in [
        event.r#type.as_bytes(),
        event.aggregate_type.as_bytes(),
        event.aggregate_id.as_bytes(),
        &occurred.seconds.to_be_bytes(),
        &occurred.nanos.to_be_bytes(),
        payload.type_url.as_bytes(),
        &payload.value,
    ] {
        // Length-prefixed, so no two different events run together into
        // the same bytes.
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    hash.finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Which of intake's records an event is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A need intake handed over.
    Need(Uuid),
    /// Something the owner started for the company without a need (a sample
    /// test booked directly, say): the company's open need of this category,
    /// or failing that its latest open case.
    Company(Uuid, NeedCategory),
}

/// A need an owner's event asks intake to open on the same case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNeed {
    pub category: NeedCategory,
    pub detail: String,
    /// Used to avoid opening the same need twice for one case.
    pub topic: String,
    pub target_markets: Vec<String>,
    pub hs_codes: Vec<String>,
}

/// A relationship an owner's event begins, changes or ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartnerFact {
    /// None: whoever holds the relationship for `reference` (a closed
    /// match names its buyer, not the office).
    pub partner: Option<Partner>,
    pub source: Source,
    pub reference: String,
    pub state: State,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerUpdate {
    pub subject: Subject,
    /// The case and company the event names (empty when it names none):
    /// intake applies the event only when they are the need's own.
    pub case_id: String,
    pub company_id: String,
    pub summary: String,
    pub progress: Option<NeedStatus>,
    pub opens: Option<NewNeed>,
    pub partners: Vec<PartnerFact>,
    /// Set when only this agency may read the line among agencies.
    pub agency_only: Option<String>,
    /// Set when the progress applies only to a need of this category: a
    /// finished sample test report finishes a sample-test need, not the
    /// buyer-discovery need a test was run under.
    pub progress_for: Option<NeedCategory>,
}

impl OwnerUpdate {
    fn with_partners(mut self, partners: Vec<PartnerFact>) -> Self {
        self.partners = partners;
        self
    }
}

fn decode<M: Name + Default>(event: &Event) -> Option<M> {
    let payload = event.payload.as_ref()?;
    if payload.type_url != M::type_url() {
        return None;
    }
    M::decode(payload.value.as_slice()).ok()
}

fn named<'a>(
    need_id: &'a str,
    case_id: &'a str,
    company_id: &'a str,
    category: NeedCategory,
) -> Named<'a> {
    Named {
        need_id,
        case_id,
        company_id,
        category,
    }
}

fn subject(need_id: &str, company_id: &str, category: NeedCategory) -> Option<Subject> {
    if let Ok(need) = Uuid::parse_str(need_id) {
        return Some(Subject::Need(need));
    }
    Uuid::parse_str(company_id)
        .ok()
        .map(|company| Subject::Company(company, category))
}

/// What an event says about where it belongs.
struct Named<'a> {
    need_id: &'a str,
    case_id: &'a str,
    company_id: &'a str,
    category: NeedCategory,
}

fn update(named: Named, summary: String, progress: Option<NeedStatus>) -> Option<OwnerUpdate> {
    Some(OwnerUpdate {
        subject: subject(named.need_id, named.company_id, named.category)?,
        case_id: named.case_id.to_owned(),
        company_id: named.company_id.to_owned(),
        summary,
        progress,
        opens: None,
        partners: Vec::new(),
        agency_only: None,
        progress_for: None,
    })
}

fn fact(partner: Option<Partner>, source: Source, reference: &str, state: State) -> PartnerFact {
    PartnerFact {
        partner,
        source,
        reference: reference.to_owned(),
        state,
    }
}

fn advisor(advisor_id: &str, assignment_id: &str, state: State) -> Option<PartnerFact> {
    (!advisor_id.is_empty() && !assignment_id.is_empty()).then(|| {
        fact(
            Some(Partner::advisor(advisor_id)),
            Source::Advisor,
            assignment_id,
            state,
        )
    })
}

/// What an owner reported erasing after intake's erasure of a company.
pub fn erasure_report(owner: NeedOwner, event: &Event) -> Option<CompanyDataErased> {
    let reported = match owner {
        NeedOwner::Mentoring => {
            MentoringEvent::parse(&event.r#type)? == MentoringEvent::PersonalDataErased
        }
        NeedOwner::Buyers => BuyersEvent::parse(&event.r#type)? == BuyersEvent::PersonalDataErased,
        NeedOwner::Referral => {
            ReferralEvent::parse(&event.r#type)? == ReferralEvent::PersonalDataErased
        }
    };
    if !reported {
        return None;
    }
    decode(event)
}

/// The agency of referral's directory an `agency.upserted` names: one a
/// company's request may be sent to from now on.
pub fn directory_agency(owner: NeedOwner, event: &Event) -> Option<String> {
    if owner != NeedOwner::Referral
        || ReferralEvent::parse(&event.r#type)? != ReferralEvent::AgencyUpserted
    {
        return None;
    }
    let agency: referral::Agency = decode(event)?;
    (!agency.agency_id.is_empty()).then_some(agency.agency_id)
}

fn enum_name(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix)
        .unwrap_or(name)
        .replace('_', " ")
        .to_lowercase()
}

/// The update `event` on `owner`'s feed implies, or `None` when it
/// concerns nothing intake tracks.
pub fn interpret(owner: NeedOwner, event: &Event) -> Option<OwnerUpdate> {
    match owner {
        NeedOwner::Mentoring => mentoring_update(event),
        NeedOwner::Buyers => buyers_update(event),
        NeedOwner::Referral => referral_update(event),
    }
}

fn mentoring_update(event: &Event) -> Option<OwnerUpdate> {
    let mentoring = NeedCategory::Mentoring;
    match MentoringEvent::parse(&event.r#type)? {
        // The advisor is assigned and has met the company: the need is
        // met, and the relationship carries on in mentoring without
        // holding the case open.
        MentoringEvent::SessionLogged => {
            let e: mentoring::SessionLogged = decode(event)?;
            update(
                named("", "", &e.company_id, mentoring),
                format!("Export advisor {} logged a session", e.advisor_id),
                Some(NeedStatus::Done),
            )
        }
        MentoringEvent::RequestWithdrawn => {
            let e: mentoring::AdvisorRequestWithdrawn = decode(event)?;
            let line = if e.assignment_id.is_empty() {
                "Advisor request withdrawn".to_owned()
            } else {
                "Advisor request withdrawn; the advisor stays with the company".to_owned()
            };
            update(
                named(&e.need_id, &e.case_id, &e.company_id, mentoring),
                line,
                Some(NeedStatus::Cancelled),
            )
        }
        MentoringEvent::AssignmentCreated => {
            let e: mentoring::AssignmentCreated = decode(event)?;
            let line = if e.predecessor_assignment_id.is_empty() {
                format!("Export advisor {} assigned", e.advisor_id)
            } else {
                format!("Export advisor {} takes over", e.advisor_id)
            };
            let partners = advisor(&e.advisor_id, &e.assignment_id, State::Active);
            Some(
                update(
                    named(&e.need_id, &e.case_id, &e.company_id, mentoring),
                    line,
                    Some(NeedStatus::InProgress),
                )?
                .with_partners(partners.into_iter().collect()),
            )
        }
        MentoringEvent::AssignmentWaitlisted => {
            let e: mentoring::AssignmentWaitlisted = decode(event)?;
            update(
                named(&e.need_id, &e.case_id, &e.company_id, mentoring),
                format!(
                    "Waiting for an export advisor with free capacity (position {})",
                    e.position
                ),
                Some(NeedStatus::Routed),
            )
        }
        MentoringEvent::AssignmentReassigned => {
            let e: mentoring::AssignmentReassigned = decode(event)?;
            let reason = mentoring::ReassignReason::try_from(e.reason)
                .map(|r| enum_name(r.as_str_name(), "REASSIGN_REASON_"))
                .unwrap_or_default();
            let partners = advisor(&e.to_advisor_id, &e.to_assignment_id, State::Active);
            Some(
                update(
                    named(&e.need_id, &e.case_id, &e.company_id, mentoring),
                    format!(
                        "Export advisor changed from {} to {} ({reason})",
                        e.from_advisor_id, e.to_advisor_id
                    ),
                    None,
                )?
                .with_partners(partners.into_iter().collect()),
            )
        }
        MentoringEvent::AssignmentHandoverStarted => {
            let e: mentoring::AssignmentHandoverStarted = decode(event)?;
            let line = if e.successor_advisor_id.is_empty() {
                format!(
                    "Advisor {} is leaving; a successor is being found",
                    e.outgoing_advisor_id
                )
            } else {
                format!(
                    "Advisor {} hands over to {}; both stay with the company during the handover",
                    e.outgoing_advisor_id, e.successor_advisor_id
                )
            };
            let partners = [
                advisor(
                    &e.outgoing_advisor_id,
                    &e.outgoing_assignment_id,
                    State::Handover,
                ),
                advisor(
                    &e.successor_advisor_id,
                    &e.successor_assignment_id,
                    State::Active,
                ),
            ];
            Some(
                update(
                    named(&e.need_id, &e.case_id, &e.company_id, mentoring),
                    line,
                    None,
                )?
                .with_partners(partners.into_iter().flatten().collect()),
            )
        }
        MentoringEvent::AssignmentEnded => {
            let e: mentoring::AssignmentEnded = decode(event)?;
            let reason = mentoring::ReassignReason::try_from(e.reason)
                .map(|r| enum_name(r.as_str_name(), "REASSIGN_REASON_"))
                .unwrap_or_default();
            let line = if e.successor_assignment_id.is_empty() {
                format!(
                    "Advisor {} no longer serves the company ({reason})",
                    e.advisor_id
                )
            } else {
                format!(
                    "Advisor {} handed the company over ({reason})",
                    e.advisor_id
                )
            };
            let partners = advisor(&e.advisor_id, &e.assignment_id, State::Ended);
            Some(
                update(
                    named(&e.need_id, &e.case_id, &e.company_id, mentoring),
                    line,
                    None,
                )?
                .with_partners(partners.into_iter().collect()),
            )
        }
        _ => None,
    }
}

fn buyers_update(event: &Event) -> Option<OwnerUpdate> {
    let discovery = NeedCategory::BuyerDiscovery;
    match BuyersEvent::parse(&event.r#type)? {
        BuyersEvent::MatchProposed => {
            let e: buyers::MatchProposed = decode(event)?;
            let office = (!e.trade_office_id.is_empty()).then(|| {
                fact(
                    Some(Partner::trade_office(&e.trade_office_id)),
                    Source::BuyerMatch,
                    &e.match_id,
                    State::Active,
                )
            });
            Some(
                update(
                    named(&e.need_id, &e.case_id, &e.company_id, discovery),
                    format!(
                        "Verified buyer {} in {} proposed (rank {})",
                        e.buyer_id, e.buyer_country, e.rank
                    ),
                    Some(NeedStatus::InProgress),
                )?
                .with_partners(office.into_iter().collect()),
            )
        }
        BuyersEvent::MatchAdvanced => {
            let e: buyers::MatchAdvanced = decode(event)?;
            let status = buyers::MatchStatus::try_from(e.to).ok();
            let to = status
                .map(|s| enum_name(s.as_str_name(), "MATCH_STATUS_"))
                .unwrap_or_default();
            // A match closed without a deal ends the office's tie to the
            // company through it.
            let closed = (status == Some(buyers::MatchStatus::ClosedNoDeal))
                .then(|| fact(None, Source::BuyerMatch, &e.match_id, State::Ended));
            Some(
                update(
                    named(&e.need_id, &e.case_id, &e.company_id, discovery),
                    format!("Buyer {} match moved to {to}", e.buyer_id),
                    None,
                )?
                .with_partners(closed.into_iter().collect()),
            )
        }
        BuyersEvent::ConsultationBooked => {
            let e: buyers::ConsultationBooked = decode(event)?;
            let at = e
                .start_time
                .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
                .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                .unwrap_or_default();
            update(
                named(&e.need_id, &e.case_id, &e.company_id, discovery),
                format!("Consultation with buyer {} booked for {at}", e.buyer_id),
                None,
            )
        }
        BuyersEvent::DealRecorded => {
            let e: buyers::DealRecorded = decode(event)?;
            let kind = buyers::DealType::try_from(e.deal_type)
                .map(|t| enum_name(t.as_str_name(), "DEAL_TYPE_"))
                .unwrap_or_default();
            let value = e
                .value
                .map(|m| format!(" worth {} {}", m.amount_minor, m.currency_code))
                .unwrap_or_default();
            update(
                named(&e.need_id, &e.case_id, &e.company_id, discovery),
                format!(
                    "Deal recorded with buyer {}: {kind}{value} (minor units)",
                    e.buyer_id
                ),
                None,
            )
        }
        BuyersEvent::DealConfirmed => {
            let e: buyers::DealConfirmed = decode(event)?;
            update(
                named(&e.need_id, &e.case_id, &e.company_id, discovery),
                format!("Deal with buyer {} confirmed by the company", e.buyer_id),
                Some(NeedStatus::Done),
            )
        }
        BuyersEvent::DealDisputed => {
            let e: buyers::DealDisputed = decode(event)?;
            let reason = buyers::DealDisputeReason::try_from(e.reason)
                .map(|r| enum_name(r.as_str_name(), "DEAL_DISPUTE_REASON_"))
                .unwrap_or_default();
            update(
                named(&e.need_id, &e.case_id, &e.company_id, discovery),
                format!(
                    "Deal {} with buyer {} disputed by the company ({reason}); the need stays open",
                    e.deal_id, e.buyer_id
                ),
                None,
            )
        }
        BuyersEvent::DealConfirmationDue => {
            let e: buyers::DealConfirmationDue = decode(event)?;
            update(
                named(&e.need_id, &e.case_id, &e.company_id, discovery),
                format!(
                    "Deal {} with buyer {} still awaits the company's confirmation (reminder {})",
                    e.deal_id, e.buyer_id, e.chase
                ),
                None,
            )
        }
        BuyersEvent::SampleStarted => {
            let e: buyers::SampleTestStarted = decode(event)?;
            update(
                named(
                    &e.need_id,
                    &e.case_id,
                    &e.company_id,
                    NeedCategory::SampleTestMarketing,
                ),
                format!(
                    "Sample test of HS {} sent to {} buyer(s)",
                    e.hs_code,
                    e.buyer_ids.len()
                ),
                Some(NeedStatus::InProgress),
            )
        }
        BuyersEvent::SampleFeedback => {
            let e: buyers::SampleFeedbackRecorded = decode(event)?;
            let (line, progress) = if e.report_complete {
                (
                    format!(
                        "Buyer {} gave sample feedback; the sample test report is complete",
                        e.buyer_id
                    ),
                    Some(NeedStatus::Done),
                )
            } else {
                (format!("Buyer {} gave sample feedback", e.buyer_id), None)
            };
            let mut found = update(
                named(
                    &e.need_id,
                    &e.case_id,
                    &e.company_id,
                    NeedCategory::SampleTestMarketing,
                ),
                line,
                progress,
            )?;
            found.progress_for = Some(NeedCategory::SampleTestMarketing);
            Some(found)
        }
        // A market-diversification need is met when the company takes up
        // a recommended market; only that need, not another buyers need
        // of the company.
        BuyersEvent::MarketAccepted => {
            let e: buyers::MarketRecommendationAccepted = decode(event)?;
            let mut found = update(
                named(
                    &e.need_id,
                    &e.case_id,
                    &e.company_id,
                    NeedCategory::MarketDiversification,
                ),
                format!("The company takes up {} as a new market", e.country),
                Some(NeedStatus::Done),
            )?;
            found.progress_for = Some(NeedCategory::MarketDiversification);
            Some(found)
        }
        // A trade-show follow-up need is met when every lead imported for
        // it converted or went through all its checkpoints.
        BuyersEvent::FollowUpCompleted => {
            let e: buyers::TradeShowFollowUpCompleted = decode(event)?;
            let mut found = update(
                named(
                    &e.need_id,
                    &e.case_id,
                    &e.company_id,
                    NeedCategory::TradeShowFollowUp,
                ),
                format!(
                    "Trade-show follow-up done: {} of {} leads converted",
                    e.converted, e.leads
                ),
                Some(NeedStatus::Done),
            )?;
            found.progress_for = Some(NeedCategory::TradeShowFollowUp);
            Some(found)
        }
        BuyersEvent::SampleCertificationGap => {
            let e: buyers::SampleCertificationGap = decode(event)?;
            let market = if e.country.is_empty() {
                String::new()
            } else {
                format!(" for {}", e.country)
            };
            let mut found = update(
                named(
                    &e.need_id,
                    &e.case_id,
                    &e.company_id,
                    NeedCategory::SampleTestMarketing,
                ),
                format!(
                    "Buyer {} reports a missing {} certification{market}",
                    e.buyer_id, e.certification
                ),
                None,
            )?;
            found.opens = Some(NewNeed {
                category: NeedCategory::Certification,
                detail: format!(
                    "{} certification for HS {}{market}, named in sample test feedback",
                    e.certification, e.hs_code
                ),
                topic: e.certification.trim().to_uppercase(),
                target_markets: (!e.country.is_empty())
                    .then(|| e.country.clone())
                    .into_iter()
                    .collect(),
                hs_codes: (!e.hs_code.is_empty())
                    .then(|| e.hs_code.clone())
                    .into_iter()
                    .collect(),
            });
            Some(found)
        }
        _ => None,
    }
}

fn referral_update(event: &Event) -> Option<OwnerUpdate> {
    // Every referral event carries the whole referral as it stands after
    // the change; its last leg says where it is now.
    let referral: referral::Referral = decode(event)?;
    let subject = Uuid::parse_str(&referral.need_id).ok().map(Subject::Need);
    let mut agency_only = None;
    let leg = referral.legs.last();
    let program = leg.map_or("", |leg| leg.program_id.as_str());
    let agency = leg.map_or("", |leg| leg.agency_id.as_str());
    let (summary, progress) = match ReferralEvent::parse(&event.r#type)? {
        ReferralEvent::Routed => (
            format!("Referred to program {program} ({agency})"),
            Some(NeedStatus::Routed),
        ),
        ReferralEvent::Accepted => (
            format!("Program {program} ({agency}) accepted the referral"),
            Some(NeedStatus::InProgress),
        ),
        ReferralEvent::Declined => {
            // The declined leg is the last one unless the decline already
            // re-routed to a new leg.
            let declined = referral
                .legs
                .iter()
                .rev()
                .find(|leg| leg.status == referral::LegStatus::Declined as i32);
            let reason = declined
                .and_then(|leg| referral::DeclineReason::try_from(leg.decline_reason).ok())
                .map(|r| enum_name(r.as_str_name(), "DECLINE_REASON_"))
                .unwrap_or_default();
            let program = declined.map_or(program, |leg| leg.program_id.as_str());
            agency_only = declined.map(|leg| leg.agency_id.clone());
            (format!("Program {program} declined ({reason})"), None)
        }
        ReferralEvent::Rerouted => (format!("Re-routed to program {program} ({agency})"), None),
        ReferralEvent::SlaBreached => {
            agency_only = referral
                .legs
                .iter()
                .rev()
                .find(|leg| leg.status == referral::LegStatus::SlaBreached as i32)
                .map(|leg| leg.agency_id.clone());
            (
                "A program did not answer in time; re-routing".to_owned(),
                None,
            )
        }
        ReferralEvent::Started => (
            format!("Program {program} started work"),
            Some(NeedStatus::InProgress),
        ),
        ReferralEvent::Completed => {
            let outcome = referral
                .outcome
                .as_ref()
                .and_then(|o| referral::OutcomeKind::try_from(o.kind).ok())
                .map(|o| enum_name(o.as_str_name(), "OUTCOME_KIND_"))
                .unwrap_or_default();
            (
                format!("Program {program} completed: {outcome}"),
                Some(NeedStatus::Done),
            )
        }
        ReferralEvent::Failed => (format!("Program {program} could not deliver"), None),
        ReferralEvent::Cancelled => ("Referral cancelled".to_owned(), Some(NeedStatus::Cancelled)),
        ReferralEvent::Exhausted => (
            format!(
                "No program could take the need after {} attempt(s); an operator follows up",
                referral.legs.len()
            ),
            None,
        ),
        ReferralEvent::Unroutable => (
            "No eligible program for this need; an operator follows up".to_owned(),
            None,
        ),
        _ => return None,
    };
    Some(OwnerUpdate {
        subject: subject?,
        case_id: referral.case_id.clone(),
        company_id: referral.company_id.clone(),
        summary,
        progress,
        opens: None,
        partners: referral_partners(&referral),
        agency_only,
        progress_for: None,
    })
}

/// Whether the leg's agency holds the referral through it: the leg is open
/// or completed, not declined, lapsed, failed or cancelled.
pub fn leg_holds(leg: &referral::ReferralLeg) -> bool {
    use referral::LegStatus;
    matches!(
        LegStatus::try_from(leg.status),
        Ok(LegStatus::Sent | LegStatus::Accepted | LegStatus::InProgress | LegStatus::Completed)
    )
}

/// Each agency with a leg of the referral works with the company while one
/// of its legs holds it ([`leg_holds`]).
fn referral_partners(referral: &referral::Referral) -> Vec<PartnerFact> {
    let mut agencies: Vec<(&str, bool)> = Vec::new();
    for leg in &referral.legs {
        if leg.agency_id.is_empty() {
            continue;
        }
        let holds = leg_holds(leg);
        match agencies.iter_mut().find(|(id, _)| *id == leg.agency_id) {
            Some((_, any)) => *any |= holds,
            None => agencies.push((&leg.agency_id, holds)),
        }
    }
    agencies
        .into_iter()
        .map(|(agency, holds)| {
            fact(
                Some(Partner::agency(agency)),
                Source::Referral,
                &referral.referral_id,
                if holds { State::Active } else { State::Ended },
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use prost_types::Any;

    use super::*;

    fn event<M: Name>(event_type: &str, payload: &M) -> Event {
        Event {
            r#type: event_type.to_owned(),
            payload: Some(Any::from_msg(payload).expect("encodes")),
            ..Default::default()
        }
    }

    #[test]
    fn a_completed_referral_finishes_its_need() {
        let need = Uuid::now_v7();
        let update = interpret(
            NeedOwner::Referral,
            &event(
                ReferralEvent::Completed.name(),
                &referral::Referral {
                    need_id: need.to_string(),
                    legs: vec![referral::ReferralLeg {
                        program_id: "sbc.export-financing".into(),
                        ..Default::default()
                    }],
                    outcome: Some(referral::ReferralOutcome {
                        kind: referral::OutcomeKind::FinancingApproved as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            ),
        )
        .expect("a completion concerns the need");
        assert_eq!(update.subject, Subject::Need(need));
        assert_eq!(update.progress, Some(NeedStatus::Done));
        assert!(
            update.summary.contains("financing approved"),
            "{}",
            update.summary
        );
    }

    #[test]
    fn a_first_session_and_a_complete_sample_report_finish_their_needs() {
        let company = Uuid::now_v7();
        let session = interpret(
            NeedOwner::Mentoring,
            &event(
                MentoringEvent::SessionLogged.name(),
                &mentoring::SessionLogged {
                    company_id: company.to_string(),
                    advisor_id: "advisor-1".into(),
                    ..Default::default()
                },
            ),
        )
        .expect("a session concerns the company's mentoring need");
        assert_eq!(
            session.subject,
            Subject::Company(company, NeedCategory::Mentoring)
        );
        assert_eq!(session.progress, Some(NeedStatus::Done));

        let need = Uuid::now_v7();
        let feedback = |report_complete| {
            interpret(
                NeedOwner::Buyers,
                &event(
                    BuyersEvent::SampleFeedback.name(),
                    &buyers::SampleFeedbackRecorded {
                        need_id: need.to_string(),
                        report_complete,
                        ..Default::default()
                    },
                ),
            )
            .expect("feedback concerns the need")
        };
        let partial = feedback(false);
        assert_eq!(partial.progress, None);
        let complete = feedback(true);
        assert_eq!(complete.subject, Subject::Need(need));
        assert_eq!(complete.progress, Some(NeedStatus::Done));
        assert_eq!(
            complete.progress_for,
            Some(NeedCategory::SampleTestMarketing)
        );
    }

    #[test]
    fn a_market_taken_up_finishes_only_a_market_diversification_need() {
        let need = Uuid::now_v7();
        let update = interpret(
            NeedOwner::Buyers,
            &event(
                BuyersEvent::MarketAccepted.name(),
                &buyers::MarketRecommendationAccepted {
                    need_id: need.to_string(),
                    country: "VN".into(),
                    ..Default::default()
                },
            ),
        )
        .expect("a market taken up concerns the need");
        assert_eq!(update.subject, Subject::Need(need));
        assert_eq!(update.progress, Some(NeedStatus::Done));
        assert_eq!(
            update.progress_for,
            Some(NeedCategory::MarketDiversification)
        );
        assert!(update.summary.contains("VN"), "{}", update.summary);
    }

    #[test]
    fn a_completed_follow_up_finishes_only_a_trade_show_need() {
        let need = Uuid::now_v7();
        let update = interpret(
            NeedOwner::Buyers,
            &event(
                BuyersEvent::FollowUpCompleted.name(),
                &buyers::TradeShowFollowUpCompleted {
                    need_id: need.to_string(),
                    leads: 3,
                    converted: 1,
                    ..Default::default()
                },
            ),
        )
        .expect("a completed follow-up concerns the need");
        assert_eq!(update.subject, Subject::Need(need));
        assert_eq!(update.progress, Some(NeedStatus::Done));
        assert_eq!(update.progress_for, Some(NeedCategory::TradeShowFollowUp));
        assert!(update.summary.contains("1 of 3"), "{}", update.summary);
    }

    #[test]
    fn a_certification_gap_opens_a_certification_need() {
        let company = Uuid::now_v7();
        let update = interpret(
            NeedOwner::Buyers,
            &event(
                BuyersEvent::SampleCertificationGap.name(),
                &buyers::SampleCertificationGap {
                    company_id: company.to_string(),
                    certification: "fda".into(),
                    hs_code: "330499".into(),
                    country: "US".into(),
                    ..Default::default()
                },
            ),
        )
        .expect("a gap concerns the company");
        assert_eq!(
            update.subject,
            Subject::Company(company, NeedCategory::SampleTestMarketing)
        );
        let opens = update.opens.expect("opens a need");
        assert_eq!(opens.category, NeedCategory::Certification);
        assert_eq!(opens.topic, "FDA");
        assert_eq!(opens.target_markets, vec!["US".to_owned()]);
        assert_eq!(opens.hs_codes, vec!["330499".to_owned()]);
    }

    #[test]
    fn a_payload_of_another_type_is_ignored() {
        let wrong = event(
            ReferralEvent::Completed.name(),
            &buyers::DealConfirmed {
                need_id: Uuid::now_v7().to_string(),
                ..Default::default()
            },
        );
        assert_eq!(interpret(NeedOwner::Referral, &wrong), None);
        assert_eq!(
            interpret(
                NeedOwner::Mentoring,
                &event(
                    MentoringEvent::AdvisorRegistered.name(),
                    &mentoring::AdvisorRegistered::default()
                )
            ),
            None
        );
    }

    #[test]
    fn a_replayed_event_has_the_same_fingerprint_and_another_event_not() {
        let completed = referral::Referral {
            need_id: Uuid::now_v7().to_string(),
            ..Default::default()
        };
        let mut first = event(ReferralEvent::Completed.name(), &completed);
        first.id = 7;
        first.occurred_at = Some(prost_types::Timestamp {
            seconds: 1_790_000_000,
            nanos: 123_000,
        });
        // The same event read again from a restored feed, under another id.
        let mut replayed = first.clone();
        replayed.id = 3;
        assert_eq!(fingerprint(&first), fingerprint(&replayed));

        let mut later = first.clone();
        later.occurred_at = Some(prost_types::Timestamp {
            seconds: 1_790_000_001,
            nanos: 123_000,
        });
        let mut other_type = first.clone();
        other_type.r#type = ReferralEvent::Failed.name().to_owned();
        assert_ne!(fingerprint(&first), fingerprint(&later));
        assert_ne!(fingerprint(&first), fingerprint(&other_type));
    }

    #[test]
    fn followed_types_fit_in_one_watch() {
        for owner in [NeedOwner::Mentoring, NeedOwner::Buyers, NeedOwner::Referral] {
            let types = followed_types(owner);
            assert!(!types.is_empty());
            assert!(types.len() <= 64, "a Watch takes at most 64 types");
        }
    }
}
