//! The four real binaries as separate processes on ephemeral ports against
//! the real Postgres: one case across every service, a downstream killed
//! mid-flow, one trace across all hops, and partners' signed webhooks.

mod canary;
mod closing;
mod flow;
mod local_run;
mod loop_journey;
mod otlp;
mod readme;
mod settings;
mod support;
mod traces;
mod webhooks;
