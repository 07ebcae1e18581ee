//! `[database]`: where the outbox and the billing records live, and how the
//! pool reaches them.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::{invalid, ConfigError};
use crate::store::{Pooler, StoreOptions};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://PATH`, a plain file path, or `postgres://…` (env `DATABASE_URL`);
    /// unset: `stripe-hookd.db` in the state directory (`Config::database_url`).
    #[serde(default)]
    pub url: Option<SecretString>,
    pub pool_size: u32,
    pub busy_timeout_ms: u64,
    pub connect_timeout_ms: u64,
    /// Postgres: `auto`, `none` or `transaction` (a pooler in transaction
    /// mode in between: PgBouncer, Supavisor, Neon's pooled URLs;
    /// store/pooler.rs).
    #[serde(default)]
    pub pooler: Pooler,
}

impl DatabaseConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.pool_size == 0 {
            return Err(invalid("database.pool_size", "must be at least 1"));
        }
        let postgres = self.url.as_ref().is_some_and(|url| {
            let url = url.expose_secret().trim();
            url.starts_with("postgres://") || url.starts_with("postgresql://")
        });
        if self.pooler == Pooler::Transaction && !postgres {
            return Err(invalid(
                "database.pooler",
                "\"transaction\" is for a Postgres URL reached through a transaction pooler; \
                 the database URL is SQLite (set database.url / DATABASE_URL to postgres://…, or remove database.pooler)",
            ));
        }
        Ok(())
    }

    /// The settings [`crate::store::Store::open`] takes.
    pub fn store_options(&self) -> StoreOptions {
        StoreOptions {
            pool_size: self.pool_size,
            busy_timeout: Duration::from_millis(self.busy_timeout_ms),
            connect_timeout: Duration::from_millis(self.connect_timeout_ms),
            pooler: self.pooler,
        }
    }
}
