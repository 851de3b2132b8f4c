//! Fault drills against the real binaries on loopback: the database
//! crashing under writes, an owner hung mid-hand-off, a feed connection
//! silently blackholed, SIGTERM under load and watchers dropping and
//! resuming at random. Each drill is bounded in time, prints its figures
//! (`cargo test -p onestop-intake --test drills -- --nocapture`) and keeps
//! them in its assertion messages.
//!
//! CI runs them shortened where the product has a setting for the wait
//! (keepalive, health interval, hand-off backoff), which still exercises
//! the real path. `ONESTOP_DRILL_FULL=1` runs them on the product's
//! defaults and at full size; see the README's "Failure modes".

mod blackhole;
mod database;
mod hung_owner;
mod shutdown;
mod support;
mod watchers;
