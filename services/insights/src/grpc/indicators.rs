//! The indicators: one snapshot, a live stream of snapshots, a CSV report.

use std::sync::Arc;
use std::time::Duration;

use onestop_contracts::insights::v1 as pb;
use onestop_platform::rpc::RpcStream;
use onestop_platform::time::to_timestamp;
use onestop_platform::{ApiResult, Caller};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use super::InsightsApi;
use crate::domain::filter::Filter;
use crate::domain::report::Report;

/// Snapshots a watcher gets at most this often (four a second).
const MIN_INTERVAL: Duration = Duration::from_millis(250);
/// A watcher hears at least this often, changed or not.
const KEEPALIVE: Duration = Duration::from_secs(15);
/// Bytes per report chunk.
const REPORT_CHUNK: usize = 16 * 1024;

/// Two snapshots show the same figures (whenever they were computed).
fn same_figures(a: &pb::Indicators, b: &pb::Indicators) -> bool {
    let strip = |indicators: &pb::Indicators| pb::Indicators {
        computed_at: None,
        feeds: Vec::new(),
        ..indicators.clone()
    };
    strip(a) == strip(b)
}

impl InsightsApi {
    pub(super) async fn get_indicators(
        &self,
        caller: Caller,
        request: pb::GetIndicatorsRequest,
    ) -> ApiResult<pb::Indicators> {
        let query =
            Filter::try_from(request.filter.as_ref())?.resolve(&caller, self.indicators.now())?;
        let version = *self.changes.subscribe().borrow();
        let snapshot = self.indicators.snapshot(&query, version).await?;
        Ok(Arc::unwrap_or_clone(snapshot))
    }

    pub(super) async fn watch_indicators(
        &self,
        caller: Caller,
        request: pb::WatchIndicatorsRequest,
    ) -> ApiResult<RpcStream<pb::Indicators>> {
        let filter = Filter::try_from(request.filter.as_ref())?;
        let indicators = self.indicators.clone();
        let query = filter.clone().resolve(&caller, indicators.now())?;
        let mut changes = self.changes.subscribe();
        let version = *changes.borrow_and_update();
        let first = indicators.snapshot(&query, version).await?;
        let (sender, receiver) = mpsc::channel::<Result<pb::Indicators, Status>>(4);
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            if sender.send(Ok((*first).clone())).await.is_err() {
                return;
            }
            let mut last = first;
            let mut sent_at = Instant::now();
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => {
                        let _ = sender
                            .send(Err(Status::unavailable("server shutting down; watch again")))
                            .await;
                        return;
                    }
                    _ = sender.closed() => return,
                    changed = changes.changed() => if changed.is_err() { return },
                    _ = tokio::time::sleep_until(sent_at + KEEPALIVE) => {
                        let mut again = (*last).clone();
                        again.computed_at = Some(to_timestamp(indicators.now()));
                        if sender.send(Ok(again)).await.is_err() {
                            return;
                        }
                        sent_at = Instant::now();
                        continue;
                    }
                }
                // Changes arriving meanwhile fold into this snapshot.
                tokio::time::sleep_until(sent_at + MIN_INTERVAL).await;
                let version = *changes.borrow_and_update();
                // Re-resolved each time: an open-ended watch follows the
                // calendar into the next month.
                let snapshot = match filter.clone().resolve(&caller, indicators.now()) {
                    Ok(query) => indicators.snapshot(&query, version).await,
                    Err(error) => Err(error),
                };
                match snapshot {
                    Ok(snapshot) if same_figures(&snapshot, &last) => {}
                    Ok(snapshot) => {
                        if sender.send(Ok((*snapshot).clone())).await.is_err() {
                            return;
                        }
                        last = snapshot;
                        sent_at = Instant::now();
                    }
                    Err(error) => {
                        let _ = sender.send(Err(error.into())).await;
                        return;
                    }
                }
            }
        });
        Ok(Box::pin(ReceiverStream::new(receiver)))
    }

    pub(super) async fn export_report(
        &self,
        caller: Caller,
        request: pb::ExportReportRequest,
    ) -> ApiResult<RpcStream<pb::ExportReportResponse>> {
        let query =
            Filter::try_from(request.filter.as_ref())?.resolve(&caller, self.indicators.now())?;
        let indicators = self.indicators.compute(&query).await?;
        let period = indicators.period.clone().unwrap_or_default();
        let file_name = if period.start_month == period.end_month {
            format!("onestop-insights-{}.csv", period.start_month)
        } else {
            format!(
                "onestop-insights-{}-to-{}.csv",
                period.start_month, period.end_month
            )
        };
        let chunks: Vec<Result<pb::ExportReportResponse, Status>> = Report::of(&indicators)
            .chunks(REPORT_CHUNK)
            .into_iter()
            .enumerate()
            .map(|(i, chunk)| {
                Ok(pb::ExportReportResponse {
                    chunk,
                    content_type: if i == 0 {
                        "text/csv; charset=utf-8".into()
                    } else {
                        String::new()
                    },
                    file_name: if i == 0 {
                        file_name.clone()
                    } else {
                        String::new()
                    },
                })
            })
            .collect();
        Ok(Box::pin(tokio_stream::iter(chunks)))
    }
}
