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

    /// The name of the loop following this feed, as health reports it.
    pub fn follower_name(self) -> &'static str {
        match self {
            Source::Intake => "intake-follower",
            Source::Mentoring => "mentoring-follower",
            Source::Buyers => "buyers-follower",
            Source::Referral => "referral-follower",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
