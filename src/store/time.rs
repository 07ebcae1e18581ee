//! Time as the store keeps it: milliseconds since the unix epoch
//! ([`EpochMs`]), a BIGINT on both backends.
//!
//! [`EpochMs::now`] is the one place the daemon reads the wall clock for
//! stored times; [`now_ms`](super::now_ms) is the same reading as a bare
//! `i64`, and `util::Clock` adds an offset to it that tests can advance.

use std::time::Duration;

use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::BigInt;
use serde::{Deserialize, Serialize};

/// Milliseconds since the unix epoch. Serialised as a plain number, so the
/// admin API's JSON is unchanged.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    AsExpression,
    FromSqlRow,
    Serialize,
    Deserialize,
)]
#[diesel(sql_type = BigInt)]
#[serde(transparent)]
pub struct EpochMs(pub i64);

impl EpochMs {
    /// The wall clock now.
    pub fn now() -> EpochMs {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        EpochMs(i64::try_from(now.as_millis()).unwrap_or(i64::MAX))
    }

    pub fn as_i64(self) -> i64 {
        self.0
    }

    /// Whole seconds since the epoch (Stripe's unit).
    pub fn as_secs(self) -> i64 {
        self.0.div_euclid(1000)
    }

    pub fn saturating_add(self, by: Duration) -> EpochMs {
        EpochMs(
            self.0
                .saturating_add(i64::try_from(by.as_millis()).unwrap_or(i64::MAX)),
        )
    }

    pub fn saturating_sub(self, by: Duration) -> EpochMs {
        EpochMs(
            self.0
                .saturating_sub(i64::try_from(by.as_millis()).unwrap_or(i64::MAX)),
        )
    }

    /// How long after `earlier` this is (zero if it is not later).
    pub fn since(self, earlier: EpochMs) -> Duration {
        Duration::from_millis(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }
}

impl From<i64> for EpochMs {
    fn from(ms: i64) -> Self {
        EpochMs(ms)
    }
}

impl From<EpochMs> for i64 {
    fn from(t: EpochMs) -> Self {
        t.0
    }
}

impl std::fmt::Display for EpochMs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl<DB> FromSql<BigInt, DB> for EpochMs
where
    DB: Backend,
    i64: FromSql<BigInt, DB>,
{
    fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
        i64::from_sql(bytes).map(EpochMs)
    }
}

impl<DB> ToSql<BigInt, DB> for EpochMs
where
    DB: Backend,
    i64: ToSql<BigInt, DB>,
{
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, DB>) -> serialize::Result {
        self.0.to_sql(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates_and_seconds_floor() {
        let t = EpochMs(1_500);
        assert_eq!(t.as_secs(), 1);
        assert_eq!(EpochMs(-1).as_secs(), -1);
        assert_eq!(t.saturating_add(Duration::from_millis(500)), EpochMs(2_000));
        assert_eq!(
            EpochMs(i64::MAX).saturating_add(Duration::MAX),
            EpochMs(i64::MAX)
        );
        assert_eq!(EpochMs(2_000).since(t), Duration::from_millis(500));
        assert_eq!(t.since(EpochMs(2_000)), Duration::ZERO);
        assert_eq!(serde_json::to_string(&t).ok().as_deref(), Some("1500"));
    }
}
