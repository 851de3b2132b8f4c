//! `InsightsService` over gRPC (and gRPC-Web on the dashboard port): the
//! handlers check the caller, turn the filter into a query it may run, and
//! read the indicators; the generated adapter forwards each RPC to them.

mod indicators;

use onestop_platform::server::CancellationToken;

use crate::changes::Changes;
use crate::indicators::Indicators;

#[derive(Clone)]
pub struct InsightsApi {
    indicators: Indicators,
    changes: Changes,
    /// Ends open watch streams on shutdown, so clients reconnect elsewhere.
    shutdown: CancellationToken,
}

impl InsightsApi {
    pub fn new(indicators: Indicators, changes: Changes, shutdown: CancellationToken) -> Self {
        Self {
            indicators,
            changes,
            shutdown,
        }
    }
}

onestop_contracts::impl_insights_service!(InsightsApi);
