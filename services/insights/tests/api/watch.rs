//! WatchIndicators: a snapshot at once, a fresh one when a figure changes.

use std::time::Duration;

use onestop_contracts::insights::v1 as pb;

use crate::common::{Feeds, Insights, filter, verified};
use crate::scenario::verified_buyer;

/// What a dashboard shows: everything but the time and feed positions.
fn shown(indicators: &pb::Indicators) -> pb::Indicators {
    pb::Indicators {
        computed_at: None,
        feeds: Vec::new(),
        ..indicators.clone()
    }
}

async fn next(stream: &mut tonic::Streaming<pb::Indicators>) -> pb::Indicators {
    tokio::time::timeout(Duration::from_secs(15), stream.message())
        .await
        .expect("a snapshot within the keepalive")
        .expect("stream open")
        .expect("a snapshot")
}

#[tokio::test]
async fn a_watcher_gets_a_snapshot_then_one_per_change() {
    let feeds = Feeds::start().await;
    let insights = Insights::start(feeds.settings()).await;
    let mut stream = insights
        .dashboard()
        .watch_indicators(pb::WatchIndicatorsRequest {
            filter: Some(filter()),
        })
        .await
        .unwrap()
        .into_inner();
    let first = next(&mut stream).await;
    assert_eq!(verified(&first), 0);

    for expected in 1..=3u64 {
        verified_buyer(&feeds, "kotra-new-york", "US").await;
        // Snapshots of intermediate states may come first (the buyer
        // registered, not yet vetted); each shows changed figures.
        let mut previous = None;
        loop {
            let snapshot = next(&mut stream).await;
            if let Some(previous) = &previous {
                assert_ne!(
                    shown(previous),
                    shown(&snapshot),
                    "a snapshot only when something changed"
                );
            }
            if verified(&snapshot) == expected {
                break;
            }
            assert!(verified(&snapshot) < expected);
            previous = Some(snapshot);
        }
    }
}
