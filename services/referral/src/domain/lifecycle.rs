//! The referral lifecycle (after HL7 Gravity's referral task): which moves
//! are legal from which status, who may make them, and what each requires.

use chrono::{DateTime, Utc};
use onestop_contracts::referral::v1::{
    self as pb, DeclineReason, DeclinedBy, FailureReason, LegStatus, OutcomeKind, ReferralStatus,
};
use onestop_domain::Money;
use onestop_platform::time::to_timestamp;
use onestop_platform::{ApiError, Role, Violations, limits};
use uuid::Uuid;

const MAX_NOTE: usize = limits::MAX_NOTE;

/// The receiving agency works the referral (accept, decline, start,
/// complete, fail).
pub const RECEIVING_AGENCY: &[Role] = &[Role::Agency];
/// The referrer (intake, as a service) or an admin withdraws it.
pub const REFERRER: &[Role] = &[Role::Service, Role::Admin];

/// One move a caller asks for, validated.
#[derive(Debug, Clone)]
pub enum Action {
    Accept {
        note: String,
    },
    Decline {
        reason: DeclineReason,
        by: DeclinedBy,
        note: String,
    },
    Start {
        note: String,
    },
    Complete {
        outcome: pb::ReferralOutcome,
    },
    Fail {
        reason: FailureReason,
        note: String,
    },
    Cancel {
        reason: String,
    },
}

fn check_note(field: &str, note: &str, required: bool, violations: &mut Violations) {
    if required && note.trim().is_empty() {
        violations.add(field, "required for reason OTHER");
    } else {
        limits::check_text(field, note, MAX_NOTE, violations);
    }
}

/// One lifecycle move on one referral, validated: what a lifecycle RPC asks.
#[derive(Debug, Clone)]
pub struct Move {
    pub referral_id: Uuid,
    pub action: Action,
}

fn referral_id(text: &str, violations: &mut Violations) -> Option<Uuid> {
    violations.id("referral_id", text)
}

fn decline_reason(value: i32, violations: &mut Violations) -> Option<DeclineReason> {
    match DeclineReason::try_from(value) {
        Ok(DeclineReason::Unspecified) | Err(_) => {
            violations.add(
                "reason",
                "one of NOT_ELIGIBLE, NO_CAPACITY, COULD_NOT_CONTACT, NO_LONGER_INTERESTED, OTHER",
            );
            None
        }
        Ok(reason) => Some(reason),
    }
}

fn declined_by(value: i32, violations: &mut Violations) -> Option<DeclinedBy> {
    match DeclinedBy::try_from(value) {
        Ok(DeclinedBy::Unspecified) | Err(_) => {
            violations.add("declined_by", "one of AGENCY, COMPANY");
            None
        }
        Ok(by) => Some(by),
    }
}

fn failure_reason(value: i32, violations: &mut Violations) -> Option<FailureReason> {
    match FailureReason::try_from(value) {
        Ok(FailureReason::Unspecified) | Err(_) => {
            violations.add(
                "reason",
                "one of COULD_NOT_CONTACT, COMPANY_WITHDREW, NOT_ELIGIBLE, APPLICATION_REJECTED, OTHER",
            );
            None
        }
        Ok(reason) => Some(reason),
    }
}

fn outcome(
    outcome: Option<&pb::ReferralOutcome>,
    violations: &mut Violations,
) -> Option<pb::ReferralOutcome> {
    let Some(outcome) = outcome else {
        violations.add("outcome", "required: what the agency achieved");
        return None;
    };
    match OutcomeKind::try_from(outcome.kind) {
        Ok(OutcomeKind::Unspecified) | Err(_) => violations.add(
            "outcome.kind",
            "one of FINANCING_APPROVED, CERTIFICATE_OBTAINED, SERVICE_DELIVERED, TRAINING_COMPLETED, LISTING_PUBLISHED",
        ),
        Ok(OutcomeKind::FinancingApproved) => match &outcome.amount {
            Some(amount) => match Money::parse(amount, None) {
                Ok(money) if money.amount_minor > 0 => {}
                Ok(_) => violations.add("outcome.amount", "must be positive"),
                Err(error) => violations.add("outcome.amount", error.to_string()),
            },
            None => violations.add("outcome.amount", "required for FINANCING_APPROVED"),
        },
        Ok(OutcomeKind::CertificateObtained) if outcome.certification.trim().is_empty() => {
            violations.add("outcome.certification", "required for CERTIFICATE_OBTAINED")
        }
        Ok(_) => {}
    }
    limits::check_text(
        "outcome.certification",
        outcome.certification.trim(),
        limits::MAX_NAME,
        violations,
    );
    check_note("outcome.note", &outcome.note, false, violations);
    Some(outcome.clone())
}

/// A move whose only input besides the referral is an optional note.
fn noted(referral_id: &str, note: &str, action: fn(String) -> Action) -> Result<Move, Violations> {
    let mut violations = Violations::default();
    let id = self::referral_id(referral_id, &mut violations);
    check_note("note", note, false, &mut violations);
    violations.finish_with(|| {
        Some(Move {
            referral_id: id?,
            action: action(note.to_owned()),
        })
    })
}

impl TryFrom<&pb::AcceptReferralRequest> for Move {
    type Error = Violations;
    fn try_from(request: &pb::AcceptReferralRequest) -> Result<Self, Violations> {
        noted(&request.referral_id, &request.note, |note| Action::Accept {
            note,
        })
    }
}

impl TryFrom<&pb::StartReferralRequest> for Move {
    type Error = Violations;
    fn try_from(request: &pb::StartReferralRequest) -> Result<Self, Violations> {
        noted(&request.referral_id, &request.note, |note| Action::Start {
            note,
        })
    }
}

impl TryFrom<&pb::DeclineReferralRequest> for Move {
    type Error = Violations;
    fn try_from(request: &pb::DeclineReferralRequest) -> Result<Self, Violations> {
        let mut violations = Violations::default();
        let referral_id = referral_id(&request.referral_id, &mut violations);
        let reason = decline_reason(request.reason, &mut violations);
        let by = declined_by(request.declined_by, &mut violations);
        let other = reason == Some(DeclineReason::Other);
        check_note("note", &request.note, other, &mut violations);
        let note = request.note.clone();
        violations.finish_with(|| {
            Some(Move {
                referral_id: referral_id?,
                action: Action::Decline {
                    reason: reason?,
                    by: by?,
                    note,
                },
            })
        })
    }
}

impl TryFrom<&pb::CompleteReferralRequest> for Move {
    type Error = Violations;
    fn try_from(request: &pb::CompleteReferralRequest) -> Result<Self, Violations> {
        let mut violations = Violations::default();
        let referral_id = referral_id(&request.referral_id, &mut violations);
        let outcome = outcome(request.outcome.as_ref(), &mut violations);
        violations.finish_with(|| {
            Some(Move {
                referral_id: referral_id?,
                action: Action::Complete { outcome: outcome? },
            })
        })
    }
}

impl TryFrom<&pb::FailReferralRequest> for Move {
    type Error = Violations;
    fn try_from(request: &pb::FailReferralRequest) -> Result<Self, Violations> {
        let mut violations = Violations::default();
        let referral_id = referral_id(&request.referral_id, &mut violations);
        let reason = failure_reason(request.reason, &mut violations);
        let other = reason == Some(FailureReason::Other);
        check_note("note", &request.note, other, &mut violations);
        let note = request.note.clone();
        violations.finish_with(|| {
            Some(Move {
                referral_id: referral_id?,
                action: Action::Fail {
                    reason: reason?,
                    note,
                },
            })
        })
    }
}

impl TryFrom<&pb::CancelReferralRequest> for Move {
    type Error = Violations;
    fn try_from(request: &pb::CancelReferralRequest) -> Result<Self, Violations> {
        let mut violations = Violations::default();
        let referral_id = referral_id(&request.referral_id, &mut violations);
        if request.reason.trim().is_empty() {
            violations.add("reason", "required");
        }
        check_note("reason", &request.reason, false, &mut violations);
        let reason = request.reason.clone();
        violations.finish_with(|| {
            Some(Move {
                referral_id: referral_id?,
                action: Action::Cancel { reason },
            })
        })
    }
}

impl Action {
    pub fn name(&self) -> &'static str {
        match self {
            Action::Accept { .. } => "accept",
            Action::Decline { .. } => "decline",
            Action::Start { .. } => "start",
            Action::Complete { .. } => "complete",
            Action::Fail { .. } => "fail",
            Action::Cancel { .. } => "cancel",
        }
    }

    fn legal_from(&self) -> &'static [ReferralStatus] {
        use ReferralStatus as S;
        match self {
            Action::Accept { .. } | Action::Decline { .. } => &[S::Sent],
            Action::Start { .. } => &[S::Accepted],
            Action::Complete { .. } => &[S::InProgress],
            Action::Fail { .. } => &[S::Accepted, S::InProgress],
            Action::Cancel { .. } => &[S::Sent, S::Accepted, S::InProgress, S::Unroutable],
        }
    }

    /// FAILED_PRECONDITION unless the move is legal from `status`.
    pub fn check_legal(&self, status: i32) -> Result<(), ApiError> {
        let current = ReferralStatus::try_from(status).unwrap_or(ReferralStatus::Unspecified);
        if self.legal_from().contains(&current) {
            Ok(())
        } else {
            Err(ApiError::failed_precondition(
                "ILLEGAL_TRANSITION",
                format!(
                    "cannot {} a referral that is {}",
                    self.name(),
                    status_name(current)
                ),
            ))
        }
    }
}

pub fn status_name(status: ReferralStatus) -> &'static str {
    status.as_str_name().trim_start_matches("REFERRAL_STATUS_")
}

pub fn leg_status_name(status: LegStatus) -> &'static str {
    status.as_str_name().trim_start_matches("LEG_STATUS_")
}

/// Whether the referral holds a slot of its current program.
pub fn holds_slot(status: i32) -> bool {
    matches!(
        ReferralStatus::try_from(status),
        Ok(ReferralStatus::Accepted | ReferralStatus::InProgress)
    )
}

pub fn current_leg(referral: &mut pb::Referral) -> Option<&mut pb::ReferralLeg> {
    referral.legs.last_mut()
}

/// Applies a legal move to the referral and its current leg. Re-routing
/// after a decline is the caller's next step.
pub fn apply(referral: &mut pb::Referral, action: &Action, now: DateTime<Utc>) {
    let at = Some(to_timestamp(now));
    referral.updated_at = at;
    let status = match action {
        Action::Accept { .. } => ReferralStatus::Accepted,
        Action::Decline { reason, by, .. } => {
            if *reason == DeclineReason::NoLongerInterested && *by == DeclinedBy::Company {
                ReferralStatus::Declined
            } else {
                // Stays SENT until re-routing decides where it goes next.
                ReferralStatus::Sent
            }
        }
        Action::Start { .. } => ReferralStatus::InProgress,
        Action::Complete { outcome } => {
            let mut outcome = outcome.clone();
            if outcome.achieved_at.is_none() {
                outcome.achieved_at = at;
            }
            referral.outcome = Some(outcome);
            ReferralStatus::Completed
        }
        Action::Fail { .. } => ReferralStatus::Failed,
        Action::Cancel { reason } => {
            referral.cancel_reason = reason.clone();
            ReferralStatus::Cancelled
        }
    };
    referral.status = status as i32;
    let unroutable = referral.legs.is_empty();
    let Some(leg) = current_leg(referral) else {
        return;
    };
    if unroutable {
        return;
    }
    match action {
        Action::Accept { note } => {
            leg.status = LegStatus::Accepted as i32;
            leg.accepted_at = at;
            leg.note = note.clone();
        }
        Action::Decline { reason, by, note } => {
            leg.status = LegStatus::Declined as i32;
            leg.decline_reason = *reason as i32;
            leg.declined_by = *by as i32;
            leg.note = note.clone();
            leg.ended_at = at;
        }
        Action::Start { note } => {
            leg.status = LegStatus::InProgress as i32;
            leg.started_at = at;
            if !note.is_empty() {
                leg.note = note.clone();
            }
        }
        Action::Complete { .. } => {
            leg.status = LegStatus::Completed as i32;
            leg.ended_at = at;
        }
        Action::Fail { reason, note } => {
            leg.status = LegStatus::Failed as i32;
            leg.failure_reason = *reason as i32;
            leg.note = note.clone();
            leg.ended_at = at;
        }
        Action::Cancel { .. } => {
            leg.status = LegStatus::Cancelled as i32;
            leg.ended_at = at;
        }
    }
}

/// Marks the current leg as not accepted in time.
pub fn breach_sla(referral: &mut pb::Referral, now: DateTime<Utc>) {
    referral.updated_at = Some(to_timestamp(now));
    if let Some(leg) = current_leg(referral) {
        leg.status = LegStatus::SlaBreached as i32;
        leg.ended_at = Some(to_timestamp(now));
    }
}

/// Whether a decline ends the referral instead of re-routing it.
pub fn ends_referral(action: &Action) -> bool {
    matches!(
        action,
        Action::Decline {
            reason: DeclineReason::NoLongerInterested,
            by: DeclinedBy::Company,
            ..
        }
    )
}
