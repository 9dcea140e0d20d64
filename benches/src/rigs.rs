//! The two sides of the durable-ingest comparison, behind one trait.
//!
//! Both frame records identically ([`FrameHeader::encode`]: crc32c over header and payload,
//! padding to 8 bytes) and make each batch durable with one sync before the next batch starts.
//! Neither overlaps the sync with the next batch's copying.
//!
//! Both rigs grow their files until [`DurableLog::recycle_if_full`] finds that `cap` bytes
//! were written, then start over in a fresh directory. Benchmarks call it outside the timed
//! region, so only appends and flushes (with the WAL's segment rollovers) are measured.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use trailmix_wal::format::{FrameHeader, frame_bytes};
use trailmix_wal::{
    ChainHash, Preallocation, RecordKind, SegmentPreparation, Seq, Wal, WalOptions,
};

use crate::data::Payloads;

/// Errors of the rigs (I/O or WAL errors), boxed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The record kind every benchmark record carries.
pub const KIND: u8 = 1;

/// Lets the disk settle after a benchmark deleted files: syncs the file system that holds
/// `dir` (deleted extents, directory updates, online discards) so the next measurement does
/// not pay for this one's cleanup.
///
/// # Errors
/// I/O errors.
pub fn settle(dir: &Path) -> Result<(), BoxError> {
    let handle = File::open(dir)?;
    rustix::fs::syncfs(&handle)?;
    Ok(())
}

/// Drops `rig` (deleting its files), syncs the file system and pauses half a second, so that
/// the next benchmark starts on a quiet disk.
///
/// # Errors
/// I/O errors from the sync.
pub fn retire<T>(rig: Option<T>, dir: &Path) -> Result<(), BoxError> {
    drop(rig);
    settle(dir)?;
    std::thread::sleep(std::time::Duration::from_millis(500));
    Ok(())
}

/// A log that makes batches of records durable.
pub trait DurableLog {
    /// Appends `n` payloads from `payloads` starting at `start`, then makes them durable with
    /// one sync. Returns the number of framed bytes appended.
    ///
    /// # Errors
    /// I/O or WAL errors.
    fn append_batch(
        &mut self,
        payloads: &Payloads,
        start: usize,
        n: usize,
    ) -> Result<u64, BoxError>;

    /// When `cap` bytes were written since the last start, starts over in a fresh, empty
    /// directory (closing and deleting the old one). Returns whether it did.
    ///
    /// # Errors
    /// I/O or WAL errors.
    fn recycle_if_full(&mut self) -> Result<bool, BoxError>;
}

/// The trailmix WAL: `append` per record, one `flush` (msync of the written range) per batch,
/// rollover to a new pre-allocated segment whenever one fills up.
#[derive(Debug)]
pub struct WalRig {
    root: PathBuf,
    options: WalOptions,
    wal: Option<Wal>,
    kind: RecordKind,
    generation: u64,
    written: u64,
    cap: u64,
    rollovers: u64,
    batches: u64,
}

impl WalRig {
    /// A WAL with `options` in a fresh directory under `root`, recycled after `cap` bytes.
    ///
    /// # Errors
    /// WAL errors from opening.
    pub fn new(root: &Path, options: WalOptions, cap: u64) -> Result<WalRig, BoxError> {
        let mut rig = WalRig {
            root: root.to_path_buf(),
            options,
            wal: None,
            kind: RecordKind::new(KIND)?,
            generation: 0,
            written: 0,
            cap,
            rollovers: 0,
            batches: 0,
        };
        rig.open_fresh()?;
        Ok(rig)
    }

    /// Options with the given pre-allocation and preparation, default otherwise (64 MiB
    /// segments).
    #[must_use]
    pub fn options(preallocation: Preallocation, ahead: bool) -> WalOptions {
        WalOptions::default()
            .preallocation(preallocation)
            .preparation(if ahead {
                SegmentPreparation::Ahead
            } else {
                SegmentPreparation::OnDemand
            })
    }

    fn dir(&self) -> PathBuf {
        self.root.join(format!("wal-{}", self.generation))
    }

    fn open_fresh(&mut self) -> Result<(), BoxError> {
        let dir = self.dir();
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        self.wal = Some(Wal::open(&dir, self.options.clone())?);
        self.written = 0;
        Ok(())
    }

    fn close(&mut self) -> Result<(), BoxError> {
        if let Some(wal) = self.wal.take() {
            wal.close()?;
        }
        let dir = self.dir();
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        Ok(())
    }

    /// Segment rollovers performed inside [`DurableLog::append_batch`] so far.
    #[must_use]
    pub fn rollovers(&self) -> u64 {
        self.rollovers
    }

    /// Batches appended so far.
    #[must_use]
    pub fn batches(&self) -> u64 {
        self.batches
    }
}

impl DurableLog for WalRig {
    fn append_batch(
        &mut self,
        payloads: &Payloads,
        start: usize,
        n: usize,
    ) -> Result<u64, BoxError> {
        let kind = self.kind;
        let wal = self.wal.as_mut().ok_or("the WAL rig is closed")?;
        let segment_before = wal.current_segment();
        let mut bytes = 0;
        for payload in payloads.window(start, n) {
            wal.append(kind, payload, &ChainHash::ZERO)?;
            bytes += frame_bytes(payload.len() as u64);
        }
        wal.flush()?;
        self.rollovers += wal.current_segment().0 - segment_before.0;
        self.batches += 1;
        self.written += bytes;
        Ok(bytes)
    }

    fn recycle_if_full(&mut self) -> Result<bool, BoxError> {
        if self.written < self.cap {
            return Ok(false);
        }
        self.close()?;
        settle(&self.root)?;
        self.generation += 1;
        self.open_fresh()?;
        Ok(true)
    }
}

impl Drop for WalRig {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// The plain ceiling: frame the batch into a user buffer exactly as the WAL frames it, one
/// buffered `write(2)` appending it to a file, then `fdatasync`. No memory map, no
/// pre-allocation, no segments, no seal, no recovery metadata.
#[derive(Debug)]
pub struct PlainAppend {
    root: PathBuf,
    file: Option<File>,
    buf: Vec<u8>,
    next_seq: u64,
    durable_end: u64,
    generation: u64,
    written: u64,
    cap: u64,
}

impl PlainAppend {
    /// An empty append-only file under `root`, recycled after `cap` bytes.
    ///
    /// # Errors
    /// I/O errors.
    pub fn new(root: &Path, cap: u64) -> Result<PlainAppend, BoxError> {
        std::fs::create_dir_all(root)?;
        let mut rig = PlainAppend {
            root: root.to_path_buf(),
            file: None,
            buf: Vec::new(),
            next_seq: 0,
            durable_end: 0,
            generation: 0,
            written: 0,
            cap,
        };
        rig.open_fresh()?;
        Ok(rig)
    }

    fn path(&self) -> PathBuf {
        self.root.join(format!("plain-{}.log", self.generation))
    }

    /// The file currently appended to.
    #[must_use]
    pub fn current_path(&self) -> PathBuf {
        self.path()
    }

    fn open_fresh(&mut self) -> Result<(), BoxError> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(self.path())?;
        File::open(&self.root)?.sync_all()?;
        self.file = Some(file);
        self.written = 0;
        self.next_seq = 0;
        self.durable_end = 0;
        Ok(())
    }

    fn close(&mut self) -> Result<(), BoxError> {
        if self.file.take().is_some() {
            std::fs::remove_file(self.path())?;
        }
        Ok(())
    }
}

impl DurableLog for PlainAppend {
    fn append_batch(
        &mut self,
        payloads: &Payloads,
        start: usize,
        n: usize,
    ) -> Result<u64, BoxError> {
        self.buf.clear();
        let mut seq = self.next_seq;
        for payload in payloads.window(start, n) {
            let header = FrameHeader {
                payload_len: u32::try_from(payload.len())?,
                seq: Seq(seq),
                durable_end: Seq(self.durable_end),
                kind: KIND,
            };
            let frame_end = self.buf.len() + usize::try_from(frame_bytes(payload.len() as u64))?;
            self.buf.extend_from_slice(&header.encode(payload));
            self.buf.extend_from_slice(payload);
            self.buf.resize(frame_end, 0);
            seq += 1;
        }
        let file = self.file.as_mut().ok_or("the plain rig is closed")?;
        file.write_all(&self.buf)?;
        file.sync_data()?;
        self.next_seq = seq;
        self.durable_end = seq;
        let bytes = self.buf.len() as u64;
        self.written += bytes;
        Ok(bytes)
    }

    fn recycle_if_full(&mut self) -> Result<bool, BoxError> {
        if self.written < self.cap {
            return Ok(false);
        }
        self.close()?;
        settle(&self.root)?;
        self.generation += 1;
        self.open_fresh()?;
        Ok(true)
    }
}

impl Drop for PlainAppend {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trailmix_wal::WalReader;
    use trailmix_wal::format::frame_at;

    #[test]
    fn ceiling_writes_the_wal_frame_layout() -> Result<(), BoxError> {
        let dir = tempfile::tempdir()?;
        let payloads = Payloads::new(5, 1000, 3);
        let mut plain = PlainAppend::new(dir.path(), u64::MAX)?;
        let first = plain.append_batch(&payloads, 0, 3)?;
        let second = plain.append_batch(&payloads, 3, 4)?;
        assert_eq!(first, 3 * frame_bytes(1000));
        assert_eq!(second, 4 * frame_bytes(1000));
        let image = std::fs::read(plain.current_path())?;
        assert_eq!(image.len() as u64, first + second);
        let mut offset = 0;
        let mut seq = 0;
        let expected: Vec<&[u8]> = payloads.window(0, 7).collect();
        while offset < image.len() as u64 {
            let frame = frame_at(&image, offset, 1 << 20).ok_or("invalid frame")?;
            assert_eq!(frame.header.seq, Seq(seq));
            assert_eq!(frame.header.durable_end, Seq(if seq < 3 { 0 } else { 3 }));
            assert_eq!(
                &image[frame.payload_range()],
                expected[usize::try_from(seq)?]
            );
            offset = frame.next_offset;
            seq += 1;
        }
        assert_eq!(seq, 7);
        Ok(())
    }

    #[test]
    fn rigs_recycle_after_cap() -> Result<(), BoxError> {
        let dir = tempfile::tempdir()?;
        let payloads = Payloads::new(4, 512, 9);
        let options = WalOptions::default()
            .segment_bytes(1 << 20)
            .record_bytes_max(64 << 10);
        let mut wal = WalRig::new(&dir.path().join("wal"), options, 64 << 10)?;
        let mut plain = PlainAppend::new(&dir.path().join("plain"), 64 << 10)?;
        let mut written = 0;
        for i in 0..200 {
            written += wal.append_batch(&payloads, i, 4)?;
            plain.append_batch(&payloads, i, 4)?;
            wal.recycle_if_full()?;
            plain.recycle_if_full()?;
        }
        assert!(written > 200 * 4 * 512);
        assert_eq!(wal.batches(), 200);
        // A fresh generation holds every record appended since it started, rollovers included.
        let reader = WalReader::open(wal.dir())?;
        let next = wal.wal.as_ref().ok_or("closed")?.next_seq();
        assert!(next.0 > 0);
        assert_eq!(reader.read_from(Seq(0))?.len() as u64, next.0);
        Ok(())
    }
}
