//! What an owner's event means for the case: which need it concerns, the
//! line the company reads on its timeline, how far the need has come, and
//! whether it opens a new need. Pure, so every mapping is testable alone.

use onestop_contracts::buyers::v1 as buyers;
use onestop_contracts::events::v1::Event;
use onestop_contracts::mentoring::v1 as mentoring;
use onestop_contracts::referral::v1 as referral;
use onestop_domain::NeedCategory;
use prost::Name;
use uuid::Uuid;

/// Event families intake follows on each owner's feed.
pub fn followed_types(source: &str) -> &'static [&'static str] {
    match source {
        "mentoring" => &["assignment.*"],
        "buyers" => &[
            "match.*",
            "deal.*",
            "consultation.*",
            "sample.started",
            "sample.certification_gap",
        ],
        "referral" => &["referral.*"],
        _ => &[],
    }
}

/// How far a need has come; a need only ever moves forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Progress {
    Routed,
    InProgress,
    Done,
    Cancelled,
}

impl Progress {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Routed => "ROUTED",
            Self::InProgress => "IN_PROGRESS",
            Self::Done => "DONE",
            Self::Cancelled => "CANCELLED",
        }
    }
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerUpdate {
    pub subject: Subject,
    pub summary: String,
    pub progress: Option<Progress>,
    pub opens: Option<NewNeed>,
}

fn decode<M: Name + Default>(event: &Event) -> Option<M> {
    let payload = event.payload.as_ref()?;
    if payload.type_url != M::type_url() {
        return None;
    }
    M::decode(payload.value.as_slice()).ok()
}

fn subject(need_id: &str, company_id: &str, category: NeedCategory) -> Option<Subject> {
    if let Ok(need) = Uuid::parse_str(need_id) {
        return Some(Subject::Need(need));
    }
    Uuid::parse_str(company_id)
        .ok()
        .map(|company| Subject::Company(company, category))
}

fn update(
    subject: Option<Subject>,
    summary: String,
    progress: Option<Progress>,
) -> Option<OwnerUpdate> {
    Some(OwnerUpdate {
        subject: subject?,
        summary,
        progress,
        opens: None,
    })
}

fn enum_name(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix)
        .unwrap_or(name)
        .replace('_', " ")
        .to_lowercase()
}

/// The update `event` from `source` implies, or `None` when it concerns
/// nothing intake tracks.
pub fn interpret(source: &str, event: &Event) -> Option<OwnerUpdate> {
    match source {
        "mentoring" => mentoring_update(event),
        "buyers" => buyers_update(event),
        "referral" => referral_update(event),
        _ => None,
    }
}

fn mentoring_update(event: &Event) -> Option<OwnerUpdate> {
    let mentoring = NeedCategory::Mentoring;
    match event.r#type.as_str() {
        "assignment.created" => {
            let e: mentoring::AssignmentCreated = decode(event)?;
            let line = if e.predecessor_assignment_id.is_empty() {
                format!("Export advisor {} assigned", e.advisor_id)
            } else {
                format!("Export advisor {} takes over", e.advisor_id)
            };
            update(
                subject(&e.need_id, &e.company_id, mentoring),
                line,
                Some(Progress::InProgress),
            )
        }
        "assignment.waitlisted" => {
            let e: mentoring::AssignmentWaitlisted = decode(event)?;
            update(
                subject(&e.need_id, &e.company_id, mentoring),
                format!(
                    "Waiting for an export advisor with free capacity (position {})",
                    e.position
                ),
                Some(Progress::Routed),
            )
        }
        "assignment.reassigned" => {
            let e: mentoring::AssignmentReassigned = decode(event)?;
            let reason = mentoring::ReassignReason::try_from(e.reason)
                .map(|r| enum_name(r.as_str_name(), "REASSIGN_REASON_"))
                .unwrap_or_default();
            update(
                subject(&e.need_id, &e.company_id, mentoring),
                format!(
                    "Export advisor changed from {} to {} ({reason})",
                    e.from_advisor_id, e.to_advisor_id
                ),
                None,
            )
        }
        "assignment.handover_started" => {
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
            update(subject(&e.need_id, &e.company_id, mentoring), line, None)
        }
        "assignment.ended" => {
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
            update(subject(&e.need_id, &e.company_id, mentoring), line, None)
        }
        _ => None,
    }
}

fn buyers_update(event: &Event) -> Option<OwnerUpdate> {
    let discovery = NeedCategory::BuyerDiscovery;
    match event.r#type.as_str() {
        "match.proposed" => {
            let e: buyers::MatchProposed = decode(event)?;
            update(
                subject(&e.need_id, &e.company_id, discovery),
                format!(
                    "Verified buyer {} in {} proposed (rank {})",
                    e.buyer_id, e.buyer_country, e.rank
                ),
                Some(Progress::InProgress),
            )
        }
        "match.advanced" => {
            let e: buyers::MatchAdvanced = decode(event)?;
            let to = buyers::MatchStatus::try_from(e.to)
                .map(|s| enum_name(s.as_str_name(), "MATCH_STATUS_"))
                .unwrap_or_default();
            update(
                subject(&e.need_id, &e.company_id, discovery),
                format!("Buyer {} match moved to {to}", e.buyer_id),
                None,
            )
        }
        "consultation.booked" => {
            let e: buyers::ConsultationBooked = decode(event)?;
            let at = e
                .start_time
                .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
                .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                .unwrap_or_default();
            update(
                subject(&e.need_id, &e.company_id, discovery),
                format!("Consultation with buyer {} booked for {at}", e.buyer_id),
                None,
            )
        }
        "deal.recorded" => {
            let e: buyers::DealRecorded = decode(event)?;
            let kind = buyers::DealType::try_from(e.deal_type)
                .map(|t| enum_name(t.as_str_name(), "DEAL_TYPE_"))
                .unwrap_or_default();
            let value = e
                .value
                .map(|m| format!(" worth {} {}", m.amount_minor, m.currency_code))
                .unwrap_or_default();
            update(
                subject(&e.need_id, &e.company_id, discovery),
                format!(
                    "Deal recorded with buyer {}: {kind}{value} (minor units)",
                    e.buyer_id
                ),
                None,
            )
        }
        "deal.confirmed" => {
            let e: buyers::DealConfirmed = decode(event)?;
            update(
                subject(&e.need_id, &e.company_id, discovery),
                format!("Deal with buyer {} confirmed by the company", e.buyer_id),
                Some(Progress::Done),
            )
        }
        "sample.started" => {
            let e: buyers::SampleTestStarted = decode(event)?;
            update(
                subject(&e.need_id, &e.company_id, NeedCategory::SampleTestMarketing),
                format!(
                    "Sample test of HS {} sent to {} buyer(s)",
                    e.hs_code,
                    e.buyer_ids.len()
                ),
                Some(Progress::InProgress),
            )
        }
        "sample.certification_gap" => {
            let e: buyers::SampleCertificationGap = decode(event)?;
            let market = if e.country.is_empty() {
                String::new()
            } else {
                format!(" for {}", e.country)
            };
            let mut found = update(
                subject(&e.need_id, &e.company_id, NeedCategory::SampleTestMarketing),
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
    let leg = referral.legs.last();
    let program = leg.map_or("", |leg| leg.program_id.as_str());
    let agency = leg.map_or("", |leg| leg.agency_id.as_str());
    let (summary, progress) = match event.r#type.as_str() {
        "referral.routed" => (
            format!("Referred to program {program} ({agency})"),
            Some(Progress::Routed),
        ),
        "referral.accepted" => (
            format!("Program {program} ({agency}) accepted the referral"),
            Some(Progress::InProgress),
        ),
        "referral.declined" => {
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
            (format!("Program {program} declined ({reason})"), None)
        }
        "referral.rerouted" => (format!("Re-routed to program {program} ({agency})"), None),
        "referral.sla_breached" => (
            "A program did not answer in time; re-routing".to_owned(),
            None,
        ),
        "referral.started" => (
            format!("Program {program} started work"),
            Some(Progress::InProgress),
        ),
        "referral.completed" => {
            let outcome = referral
                .outcome
                .as_ref()
                .and_then(|o| referral::OutcomeKind::try_from(o.kind).ok())
                .map(|o| enum_name(o.as_str_name(), "OUTCOME_KIND_"))
                .unwrap_or_default();
            (
                format!("Program {program} completed: {outcome}"),
                Some(Progress::Done),
            )
        }
        "referral.failed" => (format!("Program {program} could not deliver"), None),
        "referral.cancelled" => ("Referral cancelled".to_owned(), Some(Progress::Cancelled)),
        "referral.exhausted" => (
            format!(
                "No program could take the need after {} attempt(s); an operator follows up",
                referral.legs.len()
            ),
            None,
        ),
        "referral.unroutable" => (
            "No eligible program for this need; an operator follows up".to_owned(),
            None,
        ),
        _ => return None,
    };
    update(subject, summary, progress)
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
            "referral",
            &event(
                "referral.completed",
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
        assert_eq!(update.progress, Some(Progress::Done));
        assert!(
            update.summary.contains("financing approved"),
            "{}",
            update.summary
        );
    }

    #[test]
    fn a_certification_gap_opens_a_certification_need() {
        let company = Uuid::now_v7();
        let update = interpret(
            "buyers",
            &event(
                "sample.certification_gap",
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
            "referral.completed",
            &buyers::DealConfirmed {
                need_id: Uuid::now_v7().to_string(),
                ..Default::default()
            },
        );
        assert_eq!(interpret("referral", &wrong), None);
        assert_eq!(
            interpret(
                "mentoring",
                &event(
                    "advisor.registered",
                    &mentoring::AdvisorRegistered::default()
                )
            ),
            None
        );
    }

    #[test]
    fn progress_only_moves_forward() {
        assert!(Progress::Routed < Progress::InProgress);
        assert!(Progress::InProgress < Progress::Done);
    }
}
