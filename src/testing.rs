//! The crate's surface for its own integration tests (`tests/`) and
//! benchmarks (`benches/`): each stage's items they drive, re-exported at
//! the stage's path (`testing::store::outbox::insert_batch`). Everything
//! else in the crate is private to it. Not a stable API; hidden from docs.
//! Generated from what tests and benches import; add an item here when a
//! test needs it.

pub use crate::with_conn;
pub mod admin {
    pub mod ui {
        pub mod sessions {
            pub use crate::admin::ui::sessions::{create, delete, find, hash_id, Session};
        }
    }
}
pub mod app {
    pub use crate::app::{default_handler, open_store, reconcile_handler, serve, Application};
    pub mod reload {
        pub use crate::app::reload::{load, Loaded, Reloader, Targets};
    }
}
pub mod cli {
    pub mod check {
        pub use crate::cli::check::{run, Check, Verdict};
    }
    pub mod setup {
        pub use crate::cli::setup::{
            run, write_secret, Action, SetupOptions, METADATA_KEY, METADATA_VALUE,
        };
    }
}
pub mod config {
    pub use crate::config::{
        from_toml_str, load, After, Config, Destination, Endpoint, LogFormat, Mode, RunnerConfig,
        Signature,
    };
}
pub mod demo {
    pub use crate::demo::{
        refuse_live_keys, Demo, Handled, Options, Received, StoryOutcome, APP_DESTINATION,
    };
    pub mod fake_stripe {
        pub use crate::demo::fake_stripe::set_subscription_status;
        pub use crate::demo::fake_stripe::*;
    }
}
pub mod forward {
    pub use crate::forward::{hook, ping, ForwardOptions, Forwarder};
}
pub mod intake {
    pub mod signature {
        pub use crate::intake::signature::verify;
    }
}
pub mod queue {
    pub use crate::queue::{
        apply_fn, Apply, BenchSwitches, EventGroup, Handler, HandlerContext, HandlerError, Runner,
        QUEUED_FINISHES_PER_WORKER,
    };
    pub mod finish {
        pub use crate::queue::finish::{finish_success, successes_in, FinishError, Success};
    }
    pub mod group_commit {
        pub use crate::queue::group_commit::threads;
    }
    #[cfg(feature = "test-hooks")]
    pub mod test_hooks {
        pub use crate::queue::test_hooks::{test_effects, EffectsHandler};
    }
    pub mod worker {
        pub use crate::queue::worker::run;
    }
}
pub mod reconcile {
    pub use crate::reconcile::{
        access_events, entitlements, event_types, record_from_json, records, thin, writes, Family,
        ReconcileHandler,
    };
    pub mod catchup {
        pub use crate::reconcile::catchup::{run, CatchUpOptions, ENDPOINT};
    }
    pub mod sweep {
        pub use crate::reconcile::sweep::DRIFT_SHOWN;
    }
}
pub mod store {
    #[cfg(feature = "postgres")]
    pub use crate::store::PG_RECHECK_AFTER;
    pub use crate::store::{
        now_ms, with_conn, with_tx, write_transaction, Backend, DbConnection, EpochMs,
        PooledConnection, Pooler, Pooling, Store, StoreError, StoreOptions, Tx,
    };
    pub mod access_mode {
        pub use crate::store::access_mode::set;
    }
    pub mod deliveries {
        pub use crate::store::deliveries::{
            claim, delivery_id, discard, discard_expecting, finish_and_claim, get, list,
            list_filtered, redeliver, redeliver_expecting, Change, Claim, Delivery,
            DeliverySummary, Finished, HookEvent, Outcome,
        };
        pub mod history {
            pub use crate::store::deliveries::history::{for_delivery, NewAttempt};
        }
        pub mod pauses {
            pub use crate::store::deliveries::pauses::{list, pause, resume};
        }
        pub mod retention {
            pub use crate::store::deliveries::retention::{prune, Pruned};
        }
    }
    pub mod events {
        pub use crate::store::events::{replay, show, EventFilter};
    }
    pub mod outbox {
        pub use crate::store::outbox::{
            count, count_by_status, event_ids, get, insert_batch, list_all, NewEvent, StoredEvent,
            LIVE,
        };
        pub mod claim {
            pub use crate::store::outbox::claim::claim;
        }
        pub mod retention {
            pub use crate::store::outbox::retention::{delete_finished, prune};
        }
    }
    pub mod schema {
        pub use crate::store::schema::{
            admin_sessions, charges, checkout_sessions, customer_features, customers, deliveries,
            delivery_attempts, delivery_payloads, disputes, entitlements, event_attempts, invoices,
            object_leases, payment_intents, subscription_items, subscriptions,
        };
    }
}
pub mod stripe {
    pub use crate::stripe::{ClientOptions, StripeClient, StripeError};
    pub mod envelope {
        pub use crate::stripe::envelope::parse;
    }
}
pub mod telemetry {
    pub use crate::telemetry::init;
}
pub mod trigger {
    pub use crate::trigger::{
        http_client, run_load, send, signature_header, Intake, Load, Scenario, TYPES,
    };
    pub mod scenario {
        pub use crate::trigger::scenario::{envelope, new_id, Scenario};
    }
}
pub mod util {
    pub use crate::util::Clock;
}
