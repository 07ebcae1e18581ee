//! stripe-hookd: a durable Stripe-webhook worker daemon.
//!
//! The modules follow the way an event travels:
//! [`config`] → [`intake`] (HTTP + signature) → [`store`] (outbox) → …
//! See `docs/architecture.md`.

pub mod admin;
pub mod app;
pub mod cli;
pub mod config;
pub mod demo;
pub mod forward;
pub mod intake;
pub mod live;
pub mod metrics;
pub mod queue;
pub mod reconcile;
pub mod redact;
pub mod store;
pub mod stripe;
pub mod systemd;
pub mod telemetry;
pub mod trigger;
pub mod util;
