//! The four feeds insights follows.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    Intake,
    Mentoring,
    Buyers,
    Referral,
}

impl Source {
    pub const ALL: [Source; 4] = [
        Source::Intake,
        Source::Mentoring,
        Source::Buyers,
        Source::Referral,
    ];

    /// The feed's name, as in FeedStatus.source and the cursor table.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Intake => "intake",
            Source::Mentoring => "mentoring",
            Source::Buyers => "buyers",
            Source::Referral => "referral",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
