//! Referral's rules: the directory's validated shapes, the eligibility
//! engine, routing order and the referral lifecycle.

pub mod directory;
pub mod eligibility;
pub mod lifecycle;
pub mod referral;
