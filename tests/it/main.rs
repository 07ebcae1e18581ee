#![allow(clippy::unwrap_used, clippy::expect_used)]

//! Integration tests: the real daemon over real HTTP and a real database.
//! Every backend test runs on SQLite, and on Postgres with `--features postgres`.

mod access_api;
mod access_rule;
mod admin;
mod admin_ops;
mod billing;
mod browser;
mod budget;
mod claim;
mod daemon;
mod demo;
mod doors;
mod fake_stripe;
mod fetch_errors;
mod finish_batch;
mod finish_queued;
mod forward;
mod forward_access;
mod forward_ops;
mod forward_processes;
mod forward_races;
mod forward_retention;
mod forward_standard;
mod harness;
mod harness_faults;
mod harness_gate;
mod install;
mod intake;
mod log_output;
mod migrate;
#[cfg(feature = "postgres")]
mod pool;
#[cfg(all(feature = "postgres", feature = "test-hooks"))]
mod pooler;
#[cfg(feature = "test-hooks")]
mod processes;
mod queue;
mod reconcile;
mod reload;
mod setup;
mod signature_vectors;
mod simulation;
mod simulation_app;
mod stripe_client;
mod sweep;
mod sweep_billing;
mod systemd;
mod thin;
mod trigger;
mod write_gate;
