//! Random reads of the log: one shared reader (segment maps kept open) and a sparse directory
//! of frame positions, so reading a receipt by sequence number walks at most
//! [`POSITION_SAMPLE_EVERY`] frames instead of a whole segment.

use std::ops::ControlFlow;
use std::sync::{PoisonError, RwLock};

use crate::error::{Error, Result};
use crate::log::LogStorage;
use crate::wal::{Position, Record, Seq, WalReader};

/// One frame position is kept per this many sequence numbers (about 24 bytes each, so
/// ~190 KiB of memory per million entries). A read walks at most this many frame headers.
pub const POSITION_SAMPLE_EVERY: u64 = 128;

/// The shared random-read path of a store's log.
pub(crate) struct LogReads<L: LogStorage> {
    reader: RwLock<WalReader<L::Storage>>,
    samples: RwLock<Vec<(Seq, Position)>>,
}

impl<L: LogStorage> LogReads<L> {
    pub(crate) fn open(log: &L) -> Result<LogReads<L>> {
        Ok(LogReads {
            reader: RwLock::new(log.open_reader()?),
            samples: RwLock::new(Vec::new()),
        })
    }

    /// Records where `seq`'s frame is, if `seq` is a sampling point past the last sample.
    pub(crate) fn note(&self, seq: Seq, position: Position) {
        if !seq.0.is_multiple_of(POSITION_SAMPLE_EVERY) {
            return;
        }
        let mut samples = self.samples.write().unwrap_or_else(PoisonError::into_inner);
        if samples.last().is_none_or(|(last, _)| *last < seq) {
            samples.push((seq, position));
        }
    }

    fn hint(&self, seq: Seq) -> Option<(Seq, Position)> {
        let samples = self.samples.read().unwrap_or_else(PoisonError::into_inner);
        let at = samples.partition_point(|(s, _)| *s <= seq);
        at.checked_sub(1).map(|i| samples[i])
    }

    /// Reads the record at `seq`; re-lists the segments once when `seq` lies past them (the
    /// writer rolled over since the reader last looked).
    pub(crate) fn read(&self, seq: Seq) -> Result<Record> {
        let hint = self.hint(seq);
        let first = {
            let reader = self.reader.read().unwrap_or_else(PoisonError::into_inner);
            reader.read_with_hint(seq, hint)
        };
        match first {
            Err(crate::wal::Error::SeqOutOfRange { .. }) => {
                let mut reader = self.reader.write().unwrap_or_else(PoisonError::into_inner);
                reader.refresh()?;
                reader.read_with_hint(seq, hint).map_err(|e| match e {
                    crate::wal::Error::SeqOutOfRange { .. } => Error::NotFound {
                        seq,
                        detail: e.to_string(),
                    },
                    other => Error::from(other),
                })
            }
            other => Ok(other?),
        }
    }

    /// Calls `visit` for every record in `from..to`, in order, until it breaks; returns the
    /// seq after the last record visited. Re-lists the segments only when the known ones end
    /// before `to` (the writer rolled over since the last look), not on every call.
    pub(crate) fn scan(
        &self,
        from: Seq,
        to: Seq,
        mut visit: impl FnMut(crate::wal::RecordRef<'_>) -> Result<ControlFlow<()>>,
    ) -> Result<Seq> {
        let (next, stopped) = self.scan_known(from, to, &mut visit)?;
        if stopped || next >= to {
            return Ok(next);
        }
        self.reader
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .refresh()?;
        Ok(self.scan_known(next, to, &mut visit)?.0)
    }

    /// [`LogReads::scan`] over the segments the reader knows; also says whether `visit` broke.
    fn scan_known(
        &self,
        from: Seq,
        to: Seq,
        visit: &mut impl FnMut(crate::wal::RecordRef<'_>) -> Result<ControlFlow<()>>,
    ) -> Result<(Seq, bool)> {
        let reader = self.reader.read().unwrap_or_else(PoisonError::into_inner);
        let mut failure = None;
        let mut next = from;
        let mut stopped = false;
        reader.scan_with_hint(from, self.hint(from), |record| {
            if record.seq >= to {
                return ControlFlow::Break(());
            }
            self.note(record.seq, record.position);
            next = record.seq.next();
            match visit(record) {
                Ok(ControlFlow::Continue(())) => ControlFlow::Continue(()),
                Ok(ControlFlow::Break(())) => {
                    stopped = true;
                    ControlFlow::Break(())
                }
                Err(err) => {
                    failure = Some(err);
                    ControlFlow::Break(())
                }
            }
        })?;
        failure.map_or(Ok((next, stopped)), Err)
    }
}
