//! stripe-hookd: a durable Stripe-webhook worker daemon.
//!
//! The modules follow the way an event travels:
//! [`config`] → [`intake`] (HTTP + signature) → [`store`] (outbox) → …
//! See `docs/architecture.md`.

mod admin;
mod app;
mod cli;
mod config;
pub mod demo;
mod forward;
mod intake;
mod live;
mod metrics;
mod queue;
pub mod reconcile;
mod redact;
pub mod store;
mod stripe;
mod systemd;
mod telemetry;
mod trigger;
mod util;

pub use cli::main;

#[doc(hidden)]
pub mod testing;
