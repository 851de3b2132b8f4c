//! A clock tests set and move by hand, so time-driven behaviour (SLA
//! timers, cadences, checkpoints) is tested without sleeping.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use onestop_platform::time::Clock;

#[derive(Clone)]
pub struct ManualClock(Arc<Mutex<DateTime<Utc>>>);

impl ManualClock {
    pub fn at(start: DateTime<Utc>) -> Self {
        Self(Arc::new(Mutex::new(start)))
    }

    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().expect("clock") = at;
    }

    /// Moves the clock on by `by` and returns the new time.
    pub fn advance(&self, by: chrono::Duration) -> DateTime<Utc> {
        let mut now = self.0.lock().expect("clock");
        *now += by;
        *now
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("clock")
    }
}
