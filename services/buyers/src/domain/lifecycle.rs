//! The match lifecycle: PROPOSED -> INTRODUCED -> MEETING_SCHEDULED ->
//! NEGOTIATING -> DEAL, and CLOSED_NO_DEAL from any status before DEAL.

use onestop_contracts::buyers::v1 as pb;
use onestop_platform::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchStatus {
    Proposed,
    Introduced,
    MeetingScheduled,
    Negotiating,
    Deal,
    ClosedNoDeal,
}

impl MatchStatus {
    pub const ALL: [MatchStatus; 6] = [
        Self::Proposed,
        Self::Introduced,
        Self::MeetingScheduled,
        Self::Negotiating,
        Self::Deal,
        Self::ClosedNoDeal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Proposed => "PROPOSED",
            Self::Introduced => "INTRODUCED",
            Self::MeetingScheduled => "MEETING_SCHEDULED",
            Self::Negotiating => "NEGOTIATING",
            Self::Deal => "DEAL",
            Self::ClosedNoDeal => "CLOSED_NO_DEAL",
        }
    }

    pub fn from_stored(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    pub fn to_proto(self) -> pb::MatchStatus {
        match self {
            Self::Proposed => pb::MatchStatus::Proposed,
            Self::Introduced => pb::MatchStatus::Introduced,
            Self::MeetingScheduled => pb::MatchStatus::MeetingScheduled,
            Self::Negotiating => pb::MatchStatus::Negotiating,
            Self::Deal => pb::MatchStatus::Deal,
            Self::ClosedNoDeal => pb::MatchStatus::ClosedNoDeal,
        }
    }

    pub fn from_proto(value: i32) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.to_proto() as i32 == value)
    }

    pub fn is_final(self) -> bool {
        matches!(self, Self::Deal | Self::ClosedNoDeal)
    }

    /// The one forward step from here, if any.
    pub fn next(self) -> Option<Self> {
        match self {
            Self::Proposed => Some(Self::Introduced),
            Self::Introduced => Some(Self::MeetingScheduled),
            Self::MeetingScheduled => Some(Self::Negotiating),
            Self::Negotiating => Some(Self::Deal),
            Self::Deal | Self::ClosedNoDeal => None,
        }
    }

    /// Whether a match may move from `self` to `to`.
    pub fn may_move_to(self, to: Self) -> bool {
        if self.is_final() {
            return false;
        }
        to == Self::ClosedNoDeal || self.next() == Some(to)
    }

    /// A consultation may be arranged once the parties were introduced and
    /// until the match ends.
    pub fn allows_consultation(self) -> bool {
        matches!(
            self,
            Self::Introduced | Self::MeetingScheduled | Self::Negotiating
        )
    }
}

/// The refusals of illegal moves, with their ErrorInfo reasons.
impl MatchStatus {
    /// Whether an AdvanceMatch to `to` may apply to a match now `self`:
    /// STATUS_CHANGED when the caller expected another status, else
    /// ILLEGAL_TRANSITION when the move is not one step forward or a close.
    pub fn check_advance(self, to: Self, expected: Option<Self>) -> Result<(), ApiError> {
        if expected.is_some_and(|e| e != self) {
            return Err(ApiError::failed_precondition(
                "STATUS_CHANGED",
                format!("the match is {} now", self.as_str()),
            ));
        }
        if !self.may_move_to(to) {
            return Err(ApiError::failed_precondition(
                "ILLEGAL_TRANSITION",
                format!("a {} match cannot move to {}", self.as_str(), to.as_str()),
            ));
        }
        Ok(())
    }

    /// A deal is recorded on a NEGOTIATING match only.
    pub fn check_deal(self) -> Result<(), ApiError> {
        if self.may_move_to(Self::Deal) {
            return Ok(());
        }
        Err(ApiError::failed_precondition(
            "ILLEGAL_TRANSITION",
            format!(
                "a deal is recorded on a NEGOTIATING match; this one is {}",
                self.as_str()
            ),
        ))
    }

    pub fn check_consultation(self) -> Result<(), ApiError> {
        if self.allows_consultation() {
            return Ok(());
        }
        Err(ApiError::failed_precondition(
            "MATCH_NOT_OPEN_FOR_CONSULTATION",
            format!(
                "consultations are arranged for INTRODUCED, MEETING_SCHEDULED or NEGOTIATING matches; this one is {}",
                self.as_str()
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::MatchStatus::*;

    #[test]
    fn only_one_step_forward_or_a_close() {
        assert!(Proposed.may_move_to(Introduced));
        assert!(!Proposed.may_move_to(MeetingScheduled));
        assert!(Negotiating.may_move_to(Deal));
        assert!(Introduced.may_move_to(ClosedNoDeal));
        assert!(!Deal.may_move_to(ClosedNoDeal));
        assert!(!ClosedNoDeal.may_move_to(Introduced));
        assert!(!Introduced.may_move_to(Proposed));
    }
}
