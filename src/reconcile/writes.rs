//! A reconciled group's writes: its records, each guarded by its fetch's
//! stamp. Alone, one record after the other ([`records::write`]); in a
//! Postgres finish batch, the subscriptions of every group of the batch at
//! once ([`records::write_subscriptions`]: five statements for the batch,
//! not five per subscription), the other records one after the other.

use super::records::{self, Record, WriteContext};
use crate::queue::{Apply, Clock, HandlerError, Writes};
use crate::store::Tx;

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

/// Writes `batch` in order, except that the subscriptions of its
/// [`RecordWrites`] are written last, all together. Records of different
/// objects do not depend on each other, and the guard orders those of one.
#[cfg(feature = "postgres")]
fn write_together(c: &mut diesel::PgConnection, batch: &[&Apply]) -> Result<(), HandlerError> {
    let ours: Vec<(&RecordWrites, WriteContext)> = batch
        .iter()
        .filter_map(|w| w.as_any().downcast_ref::<RecordWrites>())
        .map(|w| (w, w.context()))
        .collect();
    for writes in batch {
        if writes.as_any().downcast_ref::<RecordWrites>().is_none() {
            writes.write(&mut Tx::Postgres(c))?;
        }
    }
    let mut subscriptions = Vec::new();
    for (writes, cx) in &ours {
        for record in &writes.records {
            match record {
                Record::Subscription(sub, raw, stamp) => {
                    subscriptions.push(records::SubscriptionWrite {
                        sub,
                        raw,
                        stamp: *stamp,
                        cx,
                    })
                }
                other => {
                    records::write(&mut Tx::Postgres(c), other, cx)?;
                }
            }
        }
    }
    records::write_subscriptions(c, &subscriptions)?;
    Ok(())
}
