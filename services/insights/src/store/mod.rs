//! Insights' SQL, all of it: the feed cursors (`feeds`), the projections
//! each fact updates (`projections`) and the figures read from them
//! (`figures`).

mod feeds;
mod figures;
mod projections;

pub use feeds::*;
pub use figures::*;
pub use projections::*;
