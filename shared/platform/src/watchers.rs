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

/// Metadata a service sets on a Watch it holds for a partner
/// (`role/tenant`, as intake's webhook deliveries do): its streams are
/// counted per partner, so one partner's endpoints cannot take the places
/// of another's. Honoured for service callers only.
pub const WATCH_FOR_HEADER: &str = "onestop-watch-for";

/// Whom a Watch counts against: the caller (role, tenant, subject), and
/// for a service the partner it watches for. Runs after authentication:
/// every Watch path needs a token.
fn caller_key<B>(request: &http::Request<B>) -> String {
    let Some(caller) = request.extensions().get::<Caller>() else {
        return String::new();
    };
    let watch_for = request
        .headers()
        .get(WATCH_FOR_HEADER)
        .and_then(|value| value.to_str().ok());
    key_of(caller, watch_for)
}

fn key_of(caller: &Caller, watch_for: Option<&str>) -> String {
    let mut key = format!(
        "{}/{}/{}",
        caller.role.as_str(),
        caller.tenant.as_deref().unwrap_or(""),
        caller.subject
    );
    if caller.role == crate::auth::Role::Service
        && let Some(partner) = watch_for
    {
        key.push_str(" for ");
        key.push_str(partner);
    }
    key
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
    /// A place for a Watch the process opens on its own feed without its
    /// listener (intake's webhook deliveries of its own events), counted
    /// as the same Watch over the listener would be.
    pub fn admit(&self, caller: &Caller, watch_for: Option<&str>) -> Result<Place, Status> {
        self.admission().limits.admit(key_of(caller, watch_for))
    }

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
        self.limits.admit(caller_key(request))
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
    fn a_service_watching_for_a_partner_counts_apart_and_nobody_else_can() {
        let key = |role: crate::auth::Role, watch_for: Option<&str>| {
            let mut request = http::Request::new(());
            request.extensions_mut().insert(Caller {
                subject: "intake".into(),
                role,
                tenant: None,
            });
            if let Some(partner) = watch_for {
                request
                    .headers_mut()
                    .insert(WATCH_FOR_HEADER, partner.parse().unwrap());
            }
            caller_key(&request)
        };
        use crate::auth::Role;
        let sbc = key(Role::Service, Some("agency/sbc"));
        assert_ne!(sbc, key(Role::Service, Some("agency/kotra")));
        assert_ne!(sbc, key(Role::Service, None));
        assert_eq!(key(Role::Admin, Some("agency/sbc")), key(Role::Admin, None));
    }

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
