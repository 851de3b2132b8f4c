//! Caps on open Watch streams, per replica and per caller. A stream holds
//! its place for as long as it is open, unlike a unary call's short slot in
//! the in-flight limit ([`crate::layers::LoadShedLayer`], which leaves
//! Watch streams to this layer): one caller opening streams in a loop must
//! not take every place, nor the streams crowd out unary calls. A Watch
//! that finds no place is refused at once with RESOURCE_EXHAUSTED; health
//! probes' watches are never counted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Status;

use crate::auth::Caller;
use crate::layers::{Admission, InFlightLimitLayer, InFlightLimitService};

/// Whether `path` opens a long-lived Watch stream of the service's own API
/// or event feed (health watches are the probes', never capped).
pub fn is_watch_path(path: &str) -> bool {
    !path.starts_with("/grpc.health.v1.")
        && path
            .rsplit_once('/')
            .is_some_and(|(_, method)| method.starts_with("Watch"))
}

/// One per replica, shared by every listener of the process.
pub type WatchLimitLayer = InFlightLimitLayer<WatchLimits>;
pub type WatchLimitService<S> = InFlightLimitService<S, WatchLimits>;

/// The replica's places for open Watch streams, and each caller's count.
#[derive(Clone)]
pub struct WatchLimits {
    limits: Arc<Limits>,
}

struct Limits {
    replica: Arc<Semaphore>,
    per_caller: usize,
    open: Mutex<HashMap<String, usize>>,
}

impl WatchLimitLayer {
    pub fn new(max_watchers: usize, max_per_caller: usize) -> Self {
        Self::with(WatchLimits {
            limits: Arc::new(Limits {
                replica: Arc::new(Semaphore::new(max_watchers.max(1))),
                per_caller: max_per_caller.max(1),
                open: Mutex::default(),
            }),
        })
    }
}

impl Admission for WatchLimits {
    type Place = Place;
    const HOLD_THROUGH_BODY: bool = true;

    fn counts(&self, path: &str) -> bool {
        is_watch_path(path)
    }

    fn admit<B>(&self, request: &http::Request<B>) -> Result<Place, Status> {
        // Runs after authentication: every Watch path needs a token.
        let caller = request
            .extensions()
            .get::<Caller>()
            .map(|caller| {
                format!(
                    "{}/{}/{}",
                    caller.role.as_str(),
                    caller.tenant.as_deref().unwrap_or(""),
                    caller.subject
                )
            })
            .unwrap_or_default();
        self.limits.admit(caller)
    }
}

impl Limits {
    fn open(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A place for one more stream of `caller`, or why there is none.
    fn admit(self: &Arc<Self>, caller: String) -> Result<Place, Status> {
        let permit = self.replica.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(
                "this replica has as many open Watch streams as it takes; retry with backoff",
            )
        })?;
        let mut open = self.open();
        let count = open.entry(caller.clone()).or_default();
        if *count >= self.per_caller {
            return Err(Status::resource_exhausted(format!(
                "this caller already has {count} open Watch streams here, the most it may; \
                 close one or retry with backoff"
            )));
        }
        *count += 1;
        Ok(Place {
            limits: self.clone(),
            caller,
            _permit: permit,
        })
    }
}

/// A stream's place, given back when its response body is dropped.
pub struct Place {
    limits: Arc<Limits>,
    caller: String,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut open = self.limits.open();
        if let Some(count) = open.get_mut(&self.caller) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.caller);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_watch_streams_are_capped() {
        assert!(is_watch_path("/onestop.events.v1.EventFeedService/Watch"));
        assert!(is_watch_path(
            "/onestop.insights.v1.InsightsService/WatchIndicators"
        ));
        assert!(!is_watch_path("/grpc.health.v1.Health/Watch"));
        assert!(!is_watch_path(
            "/onestop.insights.v1.InsightsService/ExportReport"
        ));
        assert!(!is_watch_path("/onestop.intake.v1.IntakeService/GetCase"));
    }
}
