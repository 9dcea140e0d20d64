//! Byte layouts of the WAL's files. `docs/design.md` is the specification; this module is
//! the only code that reads or writes these bytes. All integers are little-endian.

use crate::{ChainHash, HashAlgorithm, SegmentNo, Seq, StoreId};

/// The on-disk format version this build writes and reads.
pub const FORMAT_VERSION: u16 = 1;

/// Name of the WAL metadata file inside the log directory.
pub const META_FILE: &str = "wal.meta";
/// Name of the writer lock file inside the log directory.
pub const LOCK_FILE: &str = "LOCK";
/// Suffix of segment files; the stem is the first sequence number, 20 decimal digits.
pub const SEGMENT_SUFFIX: &str = ".seg";
/// Suffix of files that are being prepared and are not part of the log yet.
pub const TMP_SUFFIX: &str = ".tmp";

pub(crate) const META_MAGIC: [u8; 8] = *b"TMIXWAL\0";
pub(crate) const SEGMENT_MAGIC: [u8; 8] = *b"TMIXSEG\0";
/// Length of the metadata file.
pub const META_BYTES: usize = 64;
/// The segment header occupies the first page; frames start right after it.
pub const SEGMENT_HEADER_BYTES: u64 = 4096;
const HEADER_CORE_BYTES: usize = 128;
/// The seal lives in its own 512-byte sector so that a torn seal write cannot take the header
/// (sector 0) with it.
const SEAL_OFFSET: usize = 512;
const SEAL_BYTES: usize = 24;
/// Fixed frame header length; frames start and end on 8-byte boundaries.
pub const FRAME_HEADER_BYTES: u64 = FRAME_HEADER_LEN as u64;
const FRAME_HEADER_LEN: usize = 32;
/// Frame alignment in bytes.
pub const FRAME_ALIGN: u64 = 8;

/// Bytes a record of `payload_len` bytes occupies in a segment, header and padding included.
#[must_use]
pub fn frame_bytes(payload_len: u64) -> u64 {
    FRAME_HEADER_BYTES + payload_len.next_multiple_of(FRAME_ALIGN)
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    let mut raw = [0u8; 2];
    raw.copy_from_slice(&bytes[at..at + 2]);
    u16::from_le_bytes(raw)
}

/// A little-endian `u32` at `at`. Panics when out of bounds: callers check lengths first.
#[must_use]
pub fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut raw = [0u8; 4];
    raw.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(raw)
}

/// A little-endian `u64` at `at`. Panics when out of bounds: callers check lengths first.
#[must_use]
pub fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(raw)
}

/// `N` bytes at `at`. Panics when out of bounds: callers check lengths first.
#[must_use]
pub fn array_at<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut raw = [0u8; N];
    raw.copy_from_slice(&bytes[at..at + N]);
    raw
}

/// Why a fixed-size structure did not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer bytes than the structure needs.
    Short {
        /// Bytes available.
        len: usize,
        /// Bytes needed.
        needed: usize,
    },
    /// The magic bytes are wrong.
    BadMagic,
    /// The checksum does not match.
    BadChecksum,
    /// A version this build does not read.
    Version(u16),
    /// A field holds a value outside its domain.
    BadField(&'static str),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Short { len, needed } => write!(f, "{len} bytes, need {needed}"),
            DecodeError::BadMagic => f.write_str("bad magic bytes"),
            DecodeError::BadChecksum => f.write_str("checksum mismatch"),
            DecodeError::Version(v) => write!(f, "unknown format version {v}"),
            DecodeError::BadField(name) => write!(f, "invalid field {name}"),
        }
    }
}

/// Contents of `wal.meta`: the identity of a log, written once at creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// Random identity shared by every segment of the log.
    pub store_id: StoreId,
    /// Hash algorithm of the chain hashes that segment headers carry.
    pub hash_algorithm: HashAlgorithm,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_unix_ms: u64,
}

impl Meta {
    /// Encodes to the fixed 64-byte layout.
    #[must_use]
    pub fn encode(&self) -> [u8; META_BYTES] {
        let mut out = [0u8; META_BYTES];
        out[0..8].copy_from_slice(&META_MAGIC);
        out[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        out[10] = self.hash_algorithm as u8;
        out[16..32].copy_from_slice(&self.store_id.0);
        out[32..40].copy_from_slice(&self.created_unix_ms.to_le_bytes());
        let crc = crc32c::crc32c(&out[..60]);
        out[60..64].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes and validates the 64-byte layout.
    ///
    /// # Errors
    /// A [`DecodeError`] naming the first problem found.
    pub fn decode(bytes: &[u8]) -> Result<Meta, DecodeError> {
        if bytes.len() < META_BYTES {
            return Err(DecodeError::Short {
                len: bytes.len(),
                needed: META_BYTES,
            });
        }
        if bytes[0..8] != META_MAGIC {
            return Err(DecodeError::BadMagic);
        }
        if crc32c::crc32c(&bytes[..60]) != u32_at(bytes, 60) {
            return Err(DecodeError::BadChecksum);
        }
        let version = u16_at(bytes, 8);
        if version != FORMAT_VERSION {
            return Err(DecodeError::Version(version));
        }
        let hash_algorithm =
            HashAlgorithm::from_byte(bytes[10]).ok_or(DecodeError::BadField("hash_algorithm"))?;
        Ok(Meta {
            store_id: StoreId(array_at(bytes, 16)),
            hash_algorithm,
            created_unix_ms: u64_at(bytes, 32),
        })
    }
}

/// The fixed part of a segment header (bytes 0..128 of the segment file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Identity of the log this segment belongs to.
    pub store_id: StoreId,
    /// Hash algorithm of `prev_chain_hash`.
    pub hash_algorithm: HashAlgorithm,
    /// Position of this segment in the log, from 0, dense.
    pub segment_no: SegmentNo,
    /// Sequence number of the first record in this segment.
    pub first_seq: Seq,
    /// Chain hash the previous segment ended on (all zero for the first segment).
    pub prev_chain_hash: ChainHash,
    /// Size of the pre-allocated file in bytes.
    pub segment_bytes: u64,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_unix_ms: u64,
}

impl SegmentHeader {
    /// Encodes the 128-byte fixed header.
    #[must_use]
    pub fn encode(&self) -> [u8; HEADER_CORE_BYTES] {
        let mut out = [0u8; HEADER_CORE_BYTES];
        out[0..8].copy_from_slice(&SEGMENT_MAGIC);
        out[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        out[10] = self.hash_algorithm as u8;
        out[12..16].copy_from_slice(
            &u32::try_from(SEGMENT_HEADER_BYTES)
                .unwrap_or(0)
                .to_le_bytes(),
        );
        out[16..32].copy_from_slice(&self.store_id.0);
        out[32..40].copy_from_slice(&self.segment_no.0.to_le_bytes());
        out[40..48].copy_from_slice(&self.first_seq.0.to_le_bytes());
        out[48..80].copy_from_slice(&self.prev_chain_hash.0);
        out[80..88].copy_from_slice(&self.segment_bytes.to_le_bytes());
        out[88..96].copy_from_slice(&self.created_unix_ms.to_le_bytes());
        let crc = crc32c::crc32c(&out[..124]);
        out[124..128].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes and validates the fixed header from the start of a segment file.
    ///
    /// # Errors
    /// A [`DecodeError`] naming the first problem found.
    pub fn decode(bytes: &[u8]) -> Result<SegmentHeader, DecodeError> {
        if bytes.len() < HEADER_CORE_BYTES {
            return Err(DecodeError::Short {
                len: bytes.len(),
                needed: HEADER_CORE_BYTES,
            });
        }
        if bytes[0..8] != SEGMENT_MAGIC {
            return Err(DecodeError::BadMagic);
        }
        if crc32c::crc32c(&bytes[..124]) != u32_at(bytes, 124) {
            return Err(DecodeError::BadChecksum);
        }
        let version = u16_at(bytes, 8);
        if version != FORMAT_VERSION {
            return Err(DecodeError::Version(version));
        }
        if u64::from(u32_at(bytes, 12)) != SEGMENT_HEADER_BYTES {
            return Err(DecodeError::BadField("header_bytes"));
        }
        let hash_algorithm =
            HashAlgorithm::from_byte(bytes[10]).ok_or(DecodeError::BadField("hash_algorithm"))?;
        let segment_bytes = u64_at(bytes, 80);
        if segment_bytes < SEGMENT_HEADER_BYTES + FRAME_HEADER_BYTES {
            return Err(DecodeError::BadField("segment_bytes"));
        }
        Ok(SegmentHeader {
            store_id: StoreId(array_at(bytes, 16)),
            hash_algorithm,
            segment_no: SegmentNo(u64_at(bytes, 32)),
            first_seq: Seq(u64_at(bytes, 40)),
            prev_chain_hash: ChainHash(array_at(bytes, 48)),
            segment_bytes,
            created_unix_ms: u64_at(bytes, 88),
        })
    }
}

/// How a segment was closed, recorded in its seal slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealKind {
    /// The writer closed cleanly; the segment may be appended to after a reopen, so the seal's
    /// end is a lower bound of what is durable.
    Closed = 1,
    /// The writer rolled over to the next segment; the seal's end is exact and final.
    Rolled = 2,
}

/// The seal slot (bytes 512..536 of a segment file): where the records of a segment end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seal {
    /// Closed (lower bound) or rolled (exact).
    pub kind: SealKind,
    /// One past the last sequence number in the segment when the seal was written.
    pub end_seq: Seq,
    /// Byte offset just past the last frame when the seal was written.
    pub end_offset: u64,
}

impl Seal {
    /// Byte offset of the seal slot inside the segment file.
    pub const OFFSET: u64 = SEAL_OFFSET as u64;

    /// Encodes the 24-byte seal slot.
    #[must_use]
    pub fn encode(&self) -> [u8; SEAL_BYTES] {
        let mut out = [0u8; SEAL_BYTES];
        out[0..8].copy_from_slice(&self.end_seq.0.to_le_bytes());
        out[8..16].copy_from_slice(&self.end_offset.to_le_bytes());
        out[16] = self.kind as u8;
        let crc = crc32c::crc32c(&out[..20]);
        out[20..24].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes the seal slot from the start of a segment file; `None` when no valid seal is
    /// there (never written, or torn).
    #[must_use]
    pub fn decode(segment_bytes: &[u8]) -> Option<Seal> {
        let slot = segment_bytes.get(SEAL_OFFSET..SEAL_OFFSET + SEAL_BYTES)?;
        if crc32c::crc32c(&slot[..20]) != u32_at(slot, 20) || slot[17..20] != [0, 0, 0] {
            return None;
        }
        let kind = match slot[16] {
            1 => SealKind::Closed,
            2 => SealKind::Rolled,
            _ => return None,
        };
        Some(Seal {
            kind,
            end_seq: Seq(u64_at(slot, 0)),
            end_offset: u64_at(slot, 8),
        })
    }
}

/// The 32-byte header in front of every record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Payload length in bytes (padding excluded).
    pub payload_len: u32,
    /// Sequence number of the record.
    pub seq: Seq,
    /// When this frame was written, every record below this sequence number was durable.
    /// Recovery uses it to tell damage to durable records from a torn tail.
    pub durable_end: Seq,
    /// Record kind, 1..=255 (0 never appears in a valid frame).
    pub kind: u8,
}

impl FrameHeader {
    /// Encodes the header; the checksum covers bytes 4..32 of the header and the payload.
    #[must_use]
    pub fn encode(&self, payload: &[u8]) -> [u8; FRAME_HEADER_LEN] {
        let mut out = [0u8; FRAME_HEADER_LEN];
        out[4..8].copy_from_slice(&self.payload_len.to_le_bytes());
        out[8..16].copy_from_slice(&self.seq.0.to_le_bytes());
        out[16..24].copy_from_slice(&self.durable_end.0.to_le_bytes());
        out[24] = self.kind;
        let crc = crc32c::crc32c_append(crc32c::crc32c(&out[4..]), payload);
        out[0..4].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes the header fields at the start of `bytes` without checking the checksum;
    /// `None` when they cannot belong to a valid frame.
    #[must_use]
    pub fn decode_unchecked(bytes: &[u8]) -> Option<FrameHeader> {
        let raw = bytes.get(..FRAME_HEADER_LEN)?;
        let kind = raw[24];
        if kind == 0 || raw[25..32].iter().any(|&b| b != 0) {
            return None;
        }
        let header = FrameHeader {
            payload_len: u32_at(raw, 4),
            seq: Seq(u64_at(raw, 8)),
            durable_end: Seq(u64_at(raw, 16)),
            kind,
        };
        (header.durable_end <= header.seq).then_some(header)
    }

    /// Checks the checksum against the payload that follows the header.
    #[must_use]
    pub fn checksum_matches(raw_header: &[u8], payload: &[u8]) -> bool {
        let stored = u32_at(raw_header, 0);
        crc32c::crc32c_append(crc32c::crc32c(&raw_header[4..FRAME_HEADER_LEN]), payload) == stored
    }
}

/// A frame validated in place: header plus the payload's location.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidFrame {
    /// The decoded header.
    pub header: FrameHeader,
    /// Offset of the frame header in the segment file.
    pub offset: u64,
    /// Offset just past the frame's padding: where the next frame starts.
    pub next_offset: u64,
}

impl ValidFrame {
    /// The payload's byte range inside the segment file.
    #[must_use]
    pub fn payload_range(&self) -> std::ops::Range<usize> {
        let start = usize::try_from(self.offset + FRAME_HEADER_BYTES).unwrap_or(usize::MAX);
        start..start.saturating_add(self.header.payload_len as usize)
    }
}

/// Validates the frame at `offset` of a segment image: header sanity, bounds, zero padding,
/// checksum.
/// `record_bytes_max` bounds the payload length so garbage cannot claim a huge record.
#[must_use]
pub fn frame_at(segment: &[u8], offset: u64, record_bytes_max: u64) -> Option<ValidFrame> {
    let start = usize::try_from(offset).ok()?;
    let header = FrameHeader::decode_unchecked(segment.get(start..)?)?;
    if u64::from(header.payload_len) > record_bytes_max {
        return None;
    }
    let next_offset = offset.checked_add(frame_bytes(u64::from(header.payload_len)))?;
    if next_offset > segment.len() as u64 {
        return None;
    }
    let frame = ValidFrame {
        header,
        offset,
        next_offset,
    };
    let raw_header = &segment[start..start + FRAME_HEADER_LEN];
    let payload = frame.payload_range();
    // The padding is outside the CRC but must be zero (the writer never writes it), so that
    // no byte of a frame can change unnoticed.
    let padding = segment.get(payload.end..usize::try_from(next_offset).ok()?)?;
    if padding.iter().any(|&b| b != 0) {
        return None;
    }
    FrameHeader::checksum_matches(raw_header, &segment[payload]).then_some(frame)
}

/// The frame header at `offset` with its bounds checked but not its checksum: enough to step
/// over a frame on the way to another one (a point read checks the frame it returns in full).
#[must_use]
pub fn frame_header_at(segment: &[u8], offset: u64, record_bytes_max: u64) -> Option<ValidFrame> {
    let start = usize::try_from(offset).ok()?;
    let header = FrameHeader::decode_unchecked(segment.get(start..)?)?;
    if u64::from(header.payload_len) > record_bytes_max {
        return None;
    }
    let next_offset = offset.checked_add(frame_bytes(u64::from(header.payload_len)))?;
    (next_offset <= segment.len() as u64).then_some(ValidFrame {
        header,
        offset,
        next_offset,
    })
}

/// Name of the segment file whose first record is `first_seq`.
#[must_use]
pub fn segment_file_name(first_seq: Seq) -> String {
    format!("{:020}{SEGMENT_SUFFIX}", first_seq.0)
}

/// Parses a segment file name back to its first sequence number.
#[must_use]
pub fn parse_segment_file_name(name: &str) -> Option<Seq> {
    let stem = name.strip_suffix(SEGMENT_SUFFIX)?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok().map(Seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_round_trip_and_checksum() {
        let payload = b"hello, receipts";
        let header = FrameHeader {
            payload_len: 15,
            seq: Seq(7),
            durable_end: Seq(5),
            kind: 3,
        };
        let mut image = vec![0u8; 64];
        image[..32].copy_from_slice(&header.encode(payload));
        image[32..47].copy_from_slice(payload);
        let frame = frame_at(&image, 0, 1024).expect("valid frame");
        assert_eq!(frame.header, header);
        assert_eq!(frame.next_offset, 48);
        image[40] ^= 1;
        assert!(frame_at(&image, 0, 1024).is_none());
        image[40] ^= 1;
        image[47] = 1; // padding
        assert!(frame_at(&image, 0, 1024).is_none());
    }

    #[test]
    fn checksum_is_standard_crc32c() {
        // The check value docs/design.md cites, so that other implementations can match it.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn zero_bytes_are_never_a_frame() {
        assert!(frame_at(&[0u8; 64], 0, 1024).is_none());
    }

    #[test]
    fn headers_round_trip() {
        let header = SegmentHeader {
            store_id: StoreId([9; 16]),
            hash_algorithm: HashAlgorithm::Sha256,
            segment_no: SegmentNo(3),
            first_seq: Seq(1000),
            prev_chain_hash: ChainHash([7; 32]),
            segment_bytes: 1 << 20,
            created_unix_ms: 42,
        };
        assert_eq!(SegmentHeader::decode(&header.encode()), Ok(header));
        let seal = Seal {
            kind: SealKind::Rolled,
            end_seq: Seq(77),
            end_offset: 8192,
        };
        let mut page = vec![0u8; 4096];
        assert_eq!(Seal::decode(&page), None);
        page[512..536].copy_from_slice(&seal.encode());
        assert_eq!(Seal::decode(&page), Some(seal));
        let meta = Meta {
            store_id: StoreId([1; 16]),
            hash_algorithm: HashAlgorithm::Blake3,
            created_unix_ms: 5,
        };
        assert_eq!(Meta::decode(&meta.encode()), Ok(meta));
    }

    #[test]
    fn segment_names() {
        assert_eq!(segment_file_name(Seq(42)), "00000000000000000042.seg");
        assert_eq!(
            parse_segment_file_name("00000000000000000042.seg"),
            Some(Seq(42))
        );
        assert_eq!(parse_segment_file_name("42.seg"), None);
    }
}
