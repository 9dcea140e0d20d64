//! `trailmix-db tail DIR [FILTER...] [--follow]`: receipts in log order, and with `--follow`
//! new ones as they become durable.
//!
//! Read-only and lock-free, like `inspect`: it reads the log with
//! [`trailmix_db::wal::WalReader`] and never opens the store as [`trailmix_db::Db`], so it
//! works while a service (or `import`, or `load`) writes the store. The engine's own follower,
//! [`trailmix_db::Db::follow`], needs an open `Db`, which takes the writer lock: a `tail` built
//! on it could only follow a store that nobody else can write.
//!
//! Durable only: a reader sees receipts as soon as the writer has copied them into the log,
//! a moment before their group commit is synced. Every frame records how much of the log was
//! durable when it was written, and a clean close seals the segment with its durable end;
//! `tail` shows a receipt only once such a later frame or seal confirms it. On a live store the
//! newest commit is confirmed by the next one, or by the checkpoint the writer appends within
//! its checkpoint interval (one second by default): that bounds how far `tail` lags behind.
//!
//! Every receipt shown is checked as the engine checks a read: its frame checksum, its stored
//! digests (version 2 entries) and the next entry's link to its chain hash (every version; the
//! log's last entry has no next one yet and is shown on its checksum alone). The filter is the
//! `query` filter, applied to each receipt's header. Memory stays bounded: receipts stream from the log to stdout one at a time.

use std::fs::File;
use std::io::{ErrorKind, Read as _, Seek as _, SeekFrom, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use trailmix_db::StoredReceipt;
use trailmix_db::indexer::index_record_of;
use trailmix_db::query::Filter;
use trailmix_db::wal::format::{FRAME_HEADER_BYTES, FrameHeader, SealKind};
use trailmix_db::wal::{HashAlgorithm, Position, SegmentNo, Seq, WalReader};

use crate::search::{Columns, receipt_json, row, row_header};
use crate::{ToolError, ToolResult, scan};

#[allow(clippy::cast_possible_truncation, reason = "32 bytes")]
const FRAME_HEADER_LEN: usize = FRAME_HEADER_BYTES as usize;

/// How often `--follow` looks for new durable receipts.
pub const POLL: Duration = Duration::from_millis(50);
/// Least time between two re-listings of the log's segments while nothing new shows up (a
/// re-listing reads every segment's header; new frames in a known segment need none).
const REFRESH_EVERY: Duration = Duration::from_millis(200);

/// Where `tail` starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// At the first entry of the log.
    Beginning,
    /// At this sequence number (inclusive).
    Seq(u64),
    /// At the durable end: only receipts that become durable from now on.
    End,
}

/// `tail` settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TailOptions {
    /// Where to start.
    pub start: Start,
    /// Keep waiting for new receipts.
    pub follow: bool,
    /// One JSON object per line (as `query --json`) instead of table rows.
    pub json: bool,
}

/// Why `tail` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Without `--follow`: everything durable was shown.
    Done,
    /// SIGINT or SIGTERM.
    Interrupted,
    /// Stdout was closed (`tail --follow | head`).
    OutputClosed,
}

/// What `tail` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TailOutcome {
    /// Receipts printed.
    pub printed: u64,
    /// Where a later `tail --from-seq` resumes: every entry below it was looked at.
    pub resume_at: Seq,
    /// Entries visible in the log past the confirmed durable end (not shown).
    pub unconfirmed: u64,
    /// Why it ended.
    pub ending: Ending,
}

/// Follows a store's log without a lock: how far it goes, how much of it is durable, and the
/// receipts in between.
struct LogFollower {
    data_dir: PathBuf,
    reader: WalReader,
    alg: HashAlgorithm,
    /// The key store, read-only, to decrypt payloads (`None`: none, or not readable).
    keys: Option<trailmix_db::keystore::KeyStore>,
    /// The next entry to hand out.
    next: Seq,
    /// A frame at or before `next` in its segment, where scans start walking.
    next_hint: Option<(Seq, Position)>,
    /// The last frame seen: the visible end of the log.
    last: Option<(Seq, Position)>,
    /// Every entry below this is durable (confirmed by a frame or a seal).
    durable: Seq,
    refreshed_at: Instant,
    /// The segment file the last frame's header was read from.
    segment_file: Option<(SegmentNo, File)>,
}

impl LogFollower {
    fn open(data_dir: &Path) -> ToolResult<LogFollower> {
        let reader = scan::open_reader(data_dir)?;
        let alg = reader.meta().hash_algorithm;
        let mut follower = LogFollower {
            data_dir: data_dir.to_path_buf(),
            reader,
            alg,
            keys: scan::open_keys(data_dir),
            next: Seq(0),
            next_hint: None,
            last: None,
            durable: Seq(0),
            refreshed_at: Instant::now(),
            segment_file: None,
        };
        follower.look()?;
        Ok(follower)
    }

    fn wal_error(&self, err: &trailmix_db::wal::Error) -> ToolError {
        ToolError::wal(&self.data_dir, err)
    }

    /// One past the last entry visible in the log.
    fn visible_end(&self) -> Seq {
        self.last.map_or(Seq(0), |(seq, _)| seq.next())
    }

    /// Finds the visible end of the log and how much of it is confirmed durable.
    fn look(&mut self) -> ToolResult<()> {
        let before = self.last;
        self.walk_to_end()?;
        if self.last == before && self.refreshed_at.elapsed() >= REFRESH_EVERY {
            // Nothing new in the known segments: the writer may have rolled over to a new
            // segment, or sealed the last one on close.
            self.reader.refresh().map_err(|e| self.wal_error(&e))?;
            self.refreshed_at = Instant::now();
            self.walk_to_end()?;
        }
        if let Some((_, position)) = self.last
            && let Some(durable) = self.durable_end_of_frame(position)
        {
            self.durable = self.durable.max(durable);
        }
        for info in self.reader.segments() {
            if let Some(seal) = info.seal.filter(|s| s.kind == SealKind::Closed) {
                self.durable = self.durable.max(seal.end_seq.min(self.visible_end()));
            }
        }
        Ok(())
    }

    /// Walks the frames after the last one seen (checking each), to the end of the log.
    fn walk_to_end(&mut self) -> ToolResult<()> {
        // The first look starts in the last segment: the end is there.
        let from = self.last.map_or_else(
            || {
                self.reader
                    .segments()
                    .last()
                    .map_or(Seq(0), |s| s.header.first_seq)
            },
            |(seq, _)| seq,
        );
        let mut last = self.last;
        self.reader
            .scan_with_hint(from, self.last, |record| {
                last = Some((record.seq, record.position));
                ControlFlow::Continue(())
            })
            .map_err(|e| self.wal_error(&e))?;
        self.last = last;
        Ok(())
    }

    /// The durable end recorded in the header of the frame at `position`: every entry below
    /// it was durable when that frame was written. `None` when it cannot be read.
    fn durable_end_of_frame(&mut self, position: Position) -> Option<Seq> {
        if self
            .segment_file
            .as_ref()
            .is_none_or(|(no, _)| *no != position.segment)
        {
            let info = self
                .reader
                .segments()
                .iter()
                .find(|s| s.header.segment_no == position.segment)?;
            let path = crate::wal_dir(&self.data_dir).join(&info.file_name);
            self.segment_file = Some((position.segment, File::open(path).ok()?));
        }
        let (_, file) = self.segment_file.as_mut()?;
        let mut bytes = [0u8; FRAME_HEADER_LEN];
        file.seek(SeekFrom::Start(position.offset)).ok()?;
        file.read_exact(&mut bytes).ok()?;
        FrameHeader::decode_unchecked(&bytes).map(|header| header.durable_end)
    }

    /// Hands the receipts from `next` up to the durable end to `visit`, in order, until it
    /// breaks. Each receipt is held until the scan reaches the next entry, whose link
    /// (`prev_chain_hash`) must be the receipt's chain hash: a version 3 entry stores no
    /// digests, so that link is what shows its bytes are the ones chained (the engine's reads
    /// compare the same two). A receipt with no next entry in the log yet (its tip) is shown
    /// on its frame checksum alone, as the engine's reads do.
    fn emit(
        &mut self,
        mut visit: impl FnMut(StoredReceipt) -> ToolResult<ControlFlow<()>>,
    ) -> ToolResult<()> {
        if self.next >= self.durable {
            return Ok(());
        }
        let (alg, upto, keys) = (self.alg, self.durable, self.keys.as_ref());
        let (mut next, mut hint) = (self.next, self.next_hint);
        let mut held: Option<StoredReceipt> = None;
        let mut failure = None;
        self.reader
            .scan_with_hint(self.next, self.next_hint, |record| {
                let step = held
                    .take()
                    .map_or(Ok(ControlFlow::Continue(())), |receipt| {
                        check_link(&receipt, record.seq, record.kind.get(), record.payload)
                            .and_then(|()| visit(receipt))
                    });
                let step = step.and_then(|flow| {
                    if flow.is_break() || record.seq >= upto {
                        return Ok(ControlFlow::Break(()));
                    }
                    next = record.seq.next();
                    hint = Some((record.seq, record.position));
                    held = scan::decode_receipt(
                        alg,
                        keys,
                        record.seq,
                        record.kind.get(),
                        record.payload,
                    )
                    .map_err(|detail| damaged(record.seq, &detail))?;
                    Ok(ControlFlow::Continue(()))
                });
                step.unwrap_or_else(|err| {
                    failure = Some(err);
                    ControlFlow::Break(())
                })
            })
            .map_err(|e| self.wal_error(&e))?;
        self.next = next;
        self.next_hint = hint;
        if let Some(err) = failure {
            return Err(err);
        }
        if let Some(tip) = held {
            // The scan has ended, so whether `visit` asks to stop changes nothing.
            let _: ControlFlow<()> = visit(tip)?;
        }
        Ok(())
    }
}

/// Checks that the entry after `receipt` (record `seq`) links to the receipt's chain hash.
fn check_link(receipt: &StoredReceipt, seq: Seq, kind_byte: u8, bytes: &[u8]) -> ToolResult<()> {
    let entry = scan::decode(kind_byte, bytes).map_err(|detail| damaged(seq, &detail))?;
    if entry.chain.prev_chain_hash == receipt.position.chain_hash {
        Ok(())
    } else {
        Err(damaged(
            receipt.position.seq,
            "the receipt's bytes do not give the chain hash the next entry links to",
        ))
    }
}

fn damaged(seq: Seq, detail: &str) -> ToolError {
    ToolError::damaged(format!("store damaged at seq {seq}: {detail}"))
        .hint("run `trailmix-db verify DIR` for a full report")
}

/// Where the lines go: stdout, buffered; a closed pipe ends the output quietly.
struct Output<W: Write> {
    out: W,
    json: bool,
    printed: u64,
    closed: bool,
}

impl<W: Write> Output<W> {
    /// Writes a line; a closed pipe sets `closed` (and later lines are dropped).
    fn write_line(&mut self, line: &str) -> ToolResult<()> {
        if self.closed {
            return Ok(());
        }
        match writeln!(self.out, "{line}") {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(())
            }
            Err(e) => Err(ToolError::new(format!("cannot write to stdout: {e}"))),
        }
    }

    fn receipt(&mut self, receipt: &StoredReceipt) -> ToolResult<ControlFlow<()>> {
        let line = if self.json {
            receipt_json(receipt).to_string()
        } else {
            row(receipt, Columns::STREAMING)
        };
        self.write_line(&line)?;
        if self.closed {
            return Ok(ControlFlow::Break(()));
        }
        self.printed += 1;
        Ok(ControlFlow::Continue(()))
    }

    fn flush(&mut self) -> ToolResult<()> {
        if self.closed {
            return Ok(());
        }
        match self.out.flush() {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(())
            }
            Err(e) => Err(ToolError::new(format!("cannot write to stdout: {e}"))),
        }
    }
}

/// Parses `tail`'s filter words (the `query` filter keys without `order`, `limit` and
/// `cursor`).
///
/// # Errors
/// [`ToolError`] with the parser's message.
pub fn parse_filter(words: &[String]) -> ToolResult<Filter> {
    Filter::parse(&words.join(" ")).map_err(|e| {
        ToolError::new(format!("bad filter: {e}")).hint(
            "filter words are key=value, with the keys of `trailmix-db query` except order, \
             limit and cursor; see `trailmix-db tail --help`",
        )
    })
}

/// `tail DIR [FILTER...]`: prints the durable receipts that match `filter` from `start` on,
/// to stdout; with `follow`, keeps printing new ones until `stop` turns true or stdout is
/// closed. A short summary goes to stderr when something is worth saying.
///
/// # Errors
/// [`ToolError`] for a bad filter, a missing store, an unreadable log, a receipt that fails
/// its digest check, or a write error other than a closed pipe.
pub fn run(
    data_dir: &Path,
    filter: &[String],
    options: TailOptions,
    stop: &AtomicBool,
) -> ToolResult<TailOutcome> {
    let filter = parse_filter(filter)?;
    let mut follower = LogFollower::open(data_dir)?;
    follower.next = match options.start {
        Start::Beginning => Seq(0),
        Start::Seq(seq) => Seq(seq),
        Start::End => follower.durable,
    };
    let stdout = std::io::stdout();
    let mut output = Output {
        out: std::io::BufWriter::new(stdout.lock()),
        json: options.json,
        printed: 0,
        closed: false,
    };
    if !options.json {
        output.write_line(&row_header(Columns::STREAMING))?;
    }
    let ending = loop {
        follower.emit(|receipt| {
            if stop.load(Ordering::Relaxed) {
                return Ok(ControlFlow::Break(()));
            }
            if filter.matches(&index_record_of(&receipt)) {
                output.receipt(&receipt)
            } else {
                Ok(ControlFlow::Continue(()))
            }
        })?;
        output.flush()?;
        if output.closed {
            break Ending::OutputClosed;
        }
        if stop.load(Ordering::Relaxed) {
            break Ending::Interrupted;
        }
        if !options.follow {
            break Ending::Done;
        }
        if crate::wait_watching_stdout(POLL) {
            break Ending::OutputClosed;
        }
        if stop.load(Ordering::Relaxed) {
            break Ending::Interrupted;
        }
        follower.look()?;
    };
    if !options.json && ending == Ending::Done {
        output.write_line(&format!("{} receipt(s)", output.printed))?;
        output.flush()?;
    }
    Ok(TailOutcome {
        printed: output.printed,
        resume_at: follower.next,
        unconfirmed: follower
            .visible_end()
            .0
            .saturating_sub(follower.durable.0.max(follower.next.0)),
        ending,
    })
}
