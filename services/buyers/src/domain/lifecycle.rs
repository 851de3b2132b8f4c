//! The match lifecycle: PROPOSED -> INTRODUCED -> MEETING_SCHEDULED ->
//! NEGOTIATING -> DEAL, and CLOSED_NO_DEAL from any status before DEAL.

use onestop_contracts::buyers::v1 as pb;

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
