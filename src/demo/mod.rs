//! The offline demo: the daemon against a Stripe stand-in, no account needed.
//!
//! [`fake_stripe`] is the one Stripe stand-in, shared by `demo` and the
//! tests. Only `demo` starts it; `serve` has no way to reach it.

pub mod fake_stripe;
