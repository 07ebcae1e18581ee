//! The Stripe stand-in lives in the crate (`stripe_hookd::testing::demo::fake_stripe`),
//! shared with `stripe-hookd demo`.

pub use stripe_hookd::testing::demo::fake_stripe::*;
