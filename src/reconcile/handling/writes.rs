//! A reconciled group's writes: its records, each guarded by its fetch's
//! stamp. Alone, one record after the other ([`records::write`]); in a
//! Postgres finish batch, the records of every group of the batch at once
//! ([`records::write_many`]: one statement per table for customers,
//! invoices, payment intents and Checkout Sessions, five for the
//! subscriptions with their items and entitlement rows, not one to five
//! per record).

use super::records::{self, Record, WriteContext};
use crate::queue::{Apply, HandlerError, Writes};
use crate::store::Tx;
use crate::util::Clock;

/// The records of one group, as fetched from `account` (`None`: the
/// platform).
pub struct RecordWrites {
    records: Vec<Record>,
    clock: Clock,
    account: Option<String>,
    past_due_grace_ms: i64,
}

impl RecordWrites {
    pub fn new(
        records: Vec<Record>,
        clock: Clock,
        account: Option<String>,
        past_due_grace_ms: i64,
    ) -> Self {
        RecordWrites {
            records,
            clock,
            account,
            past_due_grace_ms,
        }
    }

    fn context(&self) -> WriteContext {
        WriteContext {
            now: self.clock.now_ms(),
            past_due_grace_ms: self.past_due_grace_ms,
            account: self.account.clone(),
        }
    }
}

impl Writes for RecordWrites {
    fn write(&self, tx: &mut Tx<'_>) -> Result<(), HandlerError> {
        let cx = self.context();
        for record in &self.records {
            records::write(tx, record, &cx)?;
        }
        Ok(())
    }

    fn write_batch(&self, tx: &mut Tx<'_>, batch: &[&Apply]) -> Option<Result<(), HandlerError>> {
        match tx {
            #[cfg(feature = "postgres")]
            Tx::Postgres(c) => Some(write_together(c, batch)),
            // One writer, in process: nothing to gain.
            Tx::Sqlite(_) => {
                let _ = batch;
                None
            }
        }
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// Writes `batch`: the writes of other kinds first, in order, then the
/// records of every [`RecordWrites`] together ([`records::write_many`]).
/// Records of different objects do not depend on each other, and the
/// guard orders those of one.
#[cfg(feature = "postgres")]
fn write_together(c: &mut diesel::PgConnection, batch: &[&Apply]) -> Result<(), HandlerError> {
    let mut ours: Vec<(&RecordWrites, WriteContext)> = Vec::with_capacity(batch.len());
    for writes in batch {
        match writes.as_any().downcast_ref::<RecordWrites>() {
            Some(records) => ours.push((records, records.context())),
            None => writes.write(&mut Tx::Postgres(c))?,
        }
    }
    let records: Vec<(&Record, &WriteContext)> = ours
        .iter()
        .flat_map(|(writes, cx)| writes.records.iter().map(move |r| (r, cx)))
        .collect();
    records::write_many(c, &records)?;
    Ok(())
}
