//! The order of fetches: a number the database hands out to each fetch of
//! a Stripe object right before its request (a Postgres sequence shared by
//! every instance, or SQLite's counter row), the overwrite guard of every
//! record written from it (see `reconcile::records`).
//!
//! Fetches that start together share one database call: a thread takes
//! every request waiting and asks for that many numbers at once (one pool
//! check-out and one statement for all of them, where each fetch paid its
//! own, with a blocking task). Each number is still taken after its fetch
//! asked for it and before the fetch's request starts, which is all the
//! order needs: fetches that start at the same moment have no order of
//! their own.

use std::sync::mpsc;

use diesel::prelude::*;
use tokio::sync::oneshot;

use super::{relaxed_transaction, with_tx, DbConnection, Pool, StoreError};

/// Most numbers asked for in one statement.
const MAX_AT_ONCE: usize = 256;

type Reply = oneshot::Sender<Result<i64, String>>;

/// The thread that hands out the numbers; it ends when this is dropped.
pub(super) struct FetchOrder {
    requests: mpsc::Sender<Reply>,
}

impl FetchOrder {
    pub(super) fn start(pool: Pool) -> std::io::Result<FetchOrder> {
        let (requests, waiting) = mpsc::channel::<Reply>();
        std::thread::Builder::new()
            .name("hookd-fetch-order".to_owned())
            .spawn(move || {
                while let Ok(first) = waiting.recv() {
                    let mut replies = vec![first];
                    replies.extend(waiting.try_iter().take(MAX_AT_ONCE - 1));
                    let numbers = pool
                        .get()
                        .map_err(StoreError::from)
                        .and_then(|mut conn| next_numbers(&mut conn, replies.len()));
                    match numbers {
                        Ok(numbers) => {
                            for (reply, n) in replies.into_iter().zip(numbers) {
                                // A fetch that gave up leaves a gap: harmless.
                                let _ = reply.send(Ok(n));
                            }
                        }
                        Err(e) => {
                            let e = e.to_string();
                            for reply in replies {
                                let _ = reply.send(Err(e.clone()));
                            }
                        }
                    }
                }
            })?;
        Ok(FetchOrder { requests })
    }

    /// The next number in the order of fetches.
    pub(super) async fn next(&self) -> Result<i64, StoreError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || StoreError::FetchOrder("the thread has stopped".to_owned());
        self.requests.send(reply).map_err(|_| stopped())?;
        answer
            .await
            .map_err(|_| stopped())?
            .map_err(StoreError::FetchOrder)
    }
}

/// Takes the next `n` numbers in the order of fetches in one statement;
/// it commits at once (no transaction is held while the requests run).
///
/// On SQLite the counter's commit is relaxed (no fsync of its own): a
/// record stamped N is committed after the counter reached N, in the same
/// WAL, so a flushed record implies a flushed counter, and a counter lost
/// to a power cut takes every record stamped with it along. One fsync per
/// fetch, under the intake's lock, is what this saves.
pub(crate) fn next_numbers(conn: &mut DbConnection, n: usize) -> Result<Vec<i64>, StoreError> {
    #[derive(QueryableByName)]
    struct Next {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        value: i64,
    }
    let count = i64::try_from(n).unwrap_or(i64::MAX);
    if count == 0 {
        return Ok(Vec::new());
    }
    match conn {
        // A write like any other: it takes its turn at the write gate.
        DbConnection::Sqlite(..) => {
            let last: Next = relaxed_transaction(conn, |tx| {
                with_tx!(tx, c => diesel::sql_query(
                    "UPDATE fetch_sequence SET value = value + ? WHERE id = 1 RETURNING value",
                )
                .bind::<diesel::sql_types::BigInt, _>(count)
                .get_result(c))
            })?;
            Ok((last.value - count + 1..=last.value).collect())
        }
        #[cfg(feature = "postgres")]
        DbConnection::Postgres(c, ..) => {
            // Prepared once per connection.
            struct NextFetchSeqs;
            let numbers: Vec<Next> = super::prepared::Cached::<NextFetchSeqs>::new(
                "SELECT nextval('fetch_sequence') AS value FROM generate_series(1, $1)",
                vec![super::prepared::Bind::BigInt(count)],
            )
            .load(c)?;
            Ok(numbers.into_iter().map(|n| n.value).collect())
        }
    }
}

/// A table of records written from fetches, each row stamped with its
/// fetch's number (`fetch_seq`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordTable {
    Customers,
    Subscriptions,
    Invoices,
    PaymentIntents,
    CheckoutSessions,
    Disputes,
    Charges,
}

/// The number of the fetch that the stored record `id` of `table` was
/// last written from, as this transaction sees it; `None` when there is
/// no such record. Records are only overwritten from a later fetch
/// (`reconcile::records`), so per record this only grows.
pub(crate) fn of_record(
    tx: &mut super::Tx<'_>,
    table: RecordTable,
    id: &str,
) -> diesel::QueryResult<Option<i64>> {
    use super::schema::{
        charges, checkout_sessions, customers, disputes, invoices, payment_intents, subscriptions,
    };
    macro_rules! seq_of {
        ($t:ident) => {
            with_tx!(tx, c => $t::table
                .filter($t::id.eq(id))
                .select($t::fetch_seq)
                .first::<i64>(c)
                .optional())
        };
    }
    match table {
        RecordTable::Customers => seq_of!(customers),
        RecordTable::Subscriptions => seq_of!(subscriptions),
        RecordTable::Invoices => seq_of!(invoices),
        RecordTable::PaymentIntents => seq_of!(payment_intents),
        RecordTable::CheckoutSessions => seq_of!(checkout_sessions),
        RecordTable::Disputes => seq_of!(disputes),
        RecordTable::Charges => seq_of!(charges),
    }
}
