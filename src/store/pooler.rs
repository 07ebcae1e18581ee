//! Postgres behind a transaction pooler: PgBouncer with
//! `pool_mode = transaction`, Supabase's Supavisor on its transaction port,
//! Neon's `-pooler` URLs.
//!
//! Such a pooler hands each transaction (and each statement outside one)
//! to whichever server connection is free, so nothing may outlive a
//! transaction on the server: no named prepared statements (diesel's
//! statement cache prepares `__diesel_stmt_N` on one server connection and
//! executes it on another: "prepared statement does not exist"), no session
//! settings, no session advisory locks, no LISTEN, no temporary tables.
//!
//! What the store does there ([`Pooling::Transaction`]):
//! - each connection's statement cache is off ([`CacheSize::Disabled`]):
//!   diesel 2.3 then sends every statement as one `PQsendQueryParams`
//!   (Parse, Bind, Execute and Sync in one round trip, with the unnamed
//!   statement), which the pooler keeps on one server connection;
//! - the rest holds on every Postgres connection anyway: settings are
//!   `SET LOCAL` inside a transaction, advisory locks are
//!   `pg_advisory_xact_lock`, migrations run in one transaction holding one
//!   (`Store::migrate`).
//!
//! The setting is `[database] pooler` ([`Pooler`]); `auto` (the default)
//! and `none` probe the URL at start ([`probe`]): a transaction pooler
//! found is used as such under `auto`, and refused under `none`.

#[cfg(feature = "postgres")]
use diesel::connection::{CacheSize, SimpleConnection};
#[cfg(feature = "postgres")]
use diesel::pg::PgConnection;
#[cfg(feature = "postgres")]
use diesel::prelude::*;
use serde::Deserialize;

#[cfg(feature = "postgres")]
use super::StoreError;

/// `[database] pooler`: what stands between the daemon and Postgres.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooler {
    /// Probed at start: a transaction pooler found is used as such.
    #[default]
    Auto,
    /// Postgres itself, or a pooler in session mode: one server session
    /// per connection. Refused if the probe finds a transaction pooler.
    None,
    /// A pooler in transaction mode: nothing kept between transactions.
    Transaction,
}

impl Pooler {
    pub fn as_str(self) -> &'static str {
        match self {
            Pooler::Auto => "auto",
            Pooler::None => "none",
            Pooler::Transaction => "transaction",
        }
    }
}

/// How the store's Postgres connections behave, settled at open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// Each connection is one server session: prepared statements are kept.
    Session,
    /// Through a transaction pooler: no prepared statements.
    Transaction,
}

impl Pooling {
    pub fn as_str(self) -> &'static str {
        match self {
            Pooling::Session => "none",
            Pooling::Transaction => "transaction",
        }
    }
}

#[cfg(feature = "postgres")]
/// Settles how to talk to the Postgres at `url` under `setting`
/// (blocking: opens two connections of its own unless the setting is
/// `transaction`).
pub(super) fn resolve(url: &str, setting: Pooler) -> Result<Pooling, StoreError> {
    if setting == Pooler::Transaction {
        return Ok(Pooling::Transaction);
    }
    if !probe(url)? {
        return Ok(Pooling::Session);
    }
    if setting == Pooler::None {
        return Err(StoreError::Pooler(
            "database.pooler is \"none\", but the database URL reaches a pooler in transaction mode \
             (another client's session settings showed through): set database.pooler = \"transaction\" \
             (STRIPE_HOOKD_DATABASE__POOLER=transaction), \"auto\", or use the direct or session-mode URL"
                .to_owned(),
        ));
    }
    // Not logged here: the short commands print their answer on stdout,
    // where the log goes too; `serve` logs it in "database ready".
    Ok(Pooling::Transaction)
}

#[cfg(feature = "postgres")]
/// Sets up a new connection for `pooling`.
pub(super) fn configure(conn: &mut PgConnection, pooling: Pooling) {
    if pooling == Pooling::Transaction {
        conn.set_prepared_statement_cache_size(CacheSize::Disabled);
    }
}

#[cfg(feature = "postgres")]
/// A setting of this daemon's own (a custom placeholder variable that
/// nothing else sets), left in a session by the probe.
const PROBE_SETTING: &str = "stripe_hookd.pooler_probe";

#[cfg(feature = "postgres")]
/// Rounds of the probe: each gives the pooler a chance to hand the second
/// connection the first one's server session (other clients, e.g. other
/// instances starting at once, may take it first).
const PROBE_ROUNDS: usize = 5;

#[cfg(feature = "postgres")]
/// Whether `url` reaches a pooler that shares server sessions between its
/// client connections (transaction or statement mode).
///
/// Connection `a` sets [`PROBE_SETTING`] to a token of its own in its
/// session; connection `b` then reads it. Straight to Postgres, or through
/// a pooler in session mode, `b` is another session while `a` is
/// connected and can never see `a`'s token. Through a transaction pooler
/// `b` often runs on the very server connection `a` just used (PgBouncer
/// reuses the last one released), and sees it; so may `a`, reading it back,
/// find it gone. Either is proof; neither in every round proves nothing
/// (a busy pool), which is why `transaction` can be configured.
pub(super) fn probe(url: &str) -> Result<bool, StoreError> {
    let token = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    );
    let mut a = PgConnection::establish(url)?;
    let mut b = PgConnection::establish(url)?;
    // The probe itself must work through the pooler.
    configure(&mut a, Pooling::Transaction);
    configure(&mut b, Pooling::Transaction);
    for _ in 0..PROBE_ROUNDS {
        a.batch_execute(&format!("SET {PROBE_SETTING} = '{token}'"))?;
        if setting(&mut b)?.as_deref() == Some(token.as_str()) {
            return Ok(true);
        }
        if setting(&mut a)?.as_deref() != Some(token.as_str()) {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(feature = "postgres")]
/// This session's [`PROBE_SETTING`] (`None`: never set in it).
fn setting(conn: &mut PgConnection) -> Result<Option<String>, StoreError> {
    #[derive(QueryableByName)]
    struct Setting {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        value: Option<String>,
    }
    let row: Setting = diesel::sql_query(format!(
        "SELECT current_setting('{PROBE_SETTING}', true) AS value"
    ))
    .get_result(conn)?;
    Ok(row.value)
}
