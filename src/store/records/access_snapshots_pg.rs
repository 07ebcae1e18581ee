//! Postgres: a customer's access lock (see [`super::access_snapshots::lock`]).

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error};
use diesel::sql_types::{Bool, Integer, Nullable, Text};

/// The first key of the two-key advisory locks on customers' access ("ha"
/// in ASCII): not the object locks' class (`store::outbox::claim`, "hk"),
/// and the two-key space does not overlap the one-key migration lock.
const ACCESS_LOCK_CLASS: i32 = 0x6861;

/// The highest access key this transaction holds (a transaction-local
/// setting: undone with a rolled-back savepoint, like its locks).
const HELD: &str = "stripe_hookd.access_lock";

#[derive(QueryableByName)]
struct Setting {
    #[diesel(sql_type = Nullable<Text>)]
    value: Option<String>,
}

#[derive(QueryableByName)]
struct Tried {
    #[diesel(sql_type = Bool)]
    got: bool,
}

/// Takes `customer`'s access lock (`key`: its second key): waits for a key
/// above every one held, only tries one below (an error when another
/// transaction holds it).
pub(super) fn lock(c: &mut PgConnection, customer: &str, key: i32) -> QueryResult<()> {
    let held: Option<i32> = diesel::sql_query("SELECT current_setting($1, true) AS value")
        .bind::<Text, _>(HELD)
        .get_result::<Setting>(c)?
        .value
        .and_then(|v| v.parse().ok());
    match held {
        Some(highest) if key == highest => Ok(()),
        Some(highest) if key < highest => {
            let tried = diesel::sql_query("SELECT pg_try_advisory_xact_lock($1, $2) AS got")
                .bind::<Integer, _>(ACCESS_LOCK_CLASS)
                .bind::<Integer, _>(key)
                .get_result::<Tried>(c)?;
            if tried.got {
                Ok(())
            } else {
                Err(Error::DatabaseError(
                    DatabaseErrorKind::Unknown,
                    Box::new(format!(
                        "the access of customer {customer} is being announced by another transaction (its lock is taken out of order here: not waited for, to rule out a deadlock); retried"
                    )),
                ))
            }
        }
        _ => diesel::sql_query(
            "SELECT set_config($3, $2::text, true) AS value \
             FROM (SELECT pg_advisory_xact_lock($1, $2)) AS locked",
        )
        .bind::<Integer, _>(ACCESS_LOCK_CLASS)
        .bind::<Integer, _>(key)
        .bind::<Text, _>(HELD)
        .get_result::<Setting>(c)
        .map(|_| ()),
    }
}
