//! Each customer's access as last announced (`access_snapshots`), and the
//! lock under which a change is compared and recorded. The comparison and
//! the announcement itself are `reconcile::access_events`'.
//!
//! Once per change, also with several Postgres instances: two transactions
//! finishing events of one customer at once, or two instances' expiry
//! sweeps, could both read the old snapshot and both announce. A change is
//! therefore written only under the customer's transaction-scoped advisory
//! lock ([`lock`]; SQLite's single writer serialises already).

use diesel::prelude::*;
use sha2::{Digest, Sha256};

use crate::store::schema::access_snapshots;
use crate::store::{with_tx, Tx};

/// The customer's access as last announced (its JSON), if ever.
pub(crate) fn announced(tx: &mut Tx<'_>, customer: &str) -> QueryResult<Option<String>> {
    with_tx!(tx, c => access_snapshots::table
        .filter(access_snapshots::customer_id.eq(customer))
        .select(access_snapshots::access)
        .first(c)
        .optional())
}

/// Records `access` (its JSON) as the customer's access last announced.
pub(crate) fn record(tx: &mut Tx<'_>, customer: &str, access: &str, now: i64) -> QueryResult<()> {
    with_tx!(tx, c => diesel::insert_into(access_snapshots::table)
        .values((
            access_snapshots::customer_id.eq(customer),
            access_snapshots::access.eq(access),
            access_snapshots::updated_at.eq(now),
        ))
        .on_conflict(access_snapshots::customer_id)
        .do_update()
        .set((
            access_snapshots::access.eq(access),
            access_snapshots::updated_at.eq(now),
        ))
        .execute(c))?;
    Ok(())
}

/// The second key of `customer`'s access lock, from the customer id (two
/// customers sharing one only wait for each other). Callers that lock
/// several customers lock them in the order of this key.
pub(crate) fn lock_key(customer: &str) -> i32 {
    let digest = Sha256::digest(customer.as_bytes());
    i32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// Takes `customer`'s access lock until the transaction ends: true on
/// Postgres, false on SQLite (one writer: nothing to lock).
///
/// No deadlock with the finisher's object locks nor between customers:
/// a transaction that takes access locks has taken every object lock it
/// will need already (the group commit locks the objects of its whole
/// batch in its first statement; the expiry sweep takes none), so nobody
/// holding an access lock waits for an object lock. And a transaction
/// waits only for a key above every access key it holds (each caller
/// locks in key order, and the highest key held is kept in a
/// transaction-local setting); a key below it, met when a later group of
/// the same batch names another customer, is only tried: if another
/// transaction holds it, this group fails with that reason and the runner
/// retries it (its savepoint is rolled back, the rest of the batch
/// commits). A cycle of waits would need keys rising all the way round
/// back to the first: there is none.
pub(crate) fn lock(tx: &mut Tx<'_>, customer: &str) -> QueryResult<bool> {
    match tx {
        #[cfg(feature = "postgres")]
        Tx::Postgres(c) => {
            super::access_snapshots_pg::lock(c, customer, lock_key(customer)).map(|()| true)
        }
        _ => {
            let _ = customer;
            Ok(false)
        }
    }
}
