//! Byte layouts of every key and value (specified in docs/design.md, "The index").
//!
//! Integers inside keys are big-endian so that byte order is numeric order; signed ones have
//! their sign bit flipped first. Integers inside values are little-endian or LEB128 varints.
//! Decoders return a static reason; callers add the table and key (see `IndexError::Corrupt`).

use crate::term::{Dimension, Term};
use crate::{IndexError, MAX_FIELD_BYTES};

/// A decoding result: the reason is a static description of what is wrong.
pub(crate) type Decoded<T> = Result<T, &'static str>;

/// Appends `v` as an unsigned LEB128 varint (1..=10 bytes).
pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(low_byte(v) | 0x80);
        v >>= 7;
    }
    out.push(low_byte(v));
}

/// The low 7 bits of `v`.
fn low_byte(v: u64) -> u8 {
    v.to_le_bytes()[0] & 0x7f
}

/// Reads a varint at `*pos`, advancing it. Refuses truncation and values over 64 bits.
pub(crate) fn get_varint(bytes: &[u8], pos: &mut usize) -> Decoded<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*pos).ok_or("truncated varint")?;
        *pos += 1;
        if shift == 63 && b > 1 {
            return Err("varint over 64 bits");
        }
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err("varint over 64 bits")
}

/// Zigzag: small magnitudes of either sign become small unsigned numbers.
pub(crate) fn zigzag(d: i64) -> u64 {
    ((d << 1) ^ (d >> 63)).cast_unsigned()
}

/// Inverse of [`zigzag`].
pub(crate) fn unzigzag(z: u64) -> i64 {
    (z >> 1).cast_signed() ^ -((z & 1).cast_signed())
}

/// An `i64` as 8 key bytes that sort like the numbers (sign bit flipped, big-endian).
pub(crate) fn i64_key(v: i64) -> [u8; 8] {
    (v.cast_unsigned() ^ (1 << 63)).to_be_bytes()
}

/// Inverse of [`i64_key`].
pub(crate) fn i64_from_key(b: [u8; 8]) -> i64 {
    (u64::from_be_bytes(b) ^ (1 << 63)).cast_signed()
}

/// Checks that a string fits a `str` field (`u16` length).
pub(crate) fn check_len(s: &str, field: &'static str, seq: Option<u64>) -> Result<(), IndexError> {
    if s.len() > MAX_FIELD_BYTES {
        return Err(IndexError::FieldTooLong {
            seq,
            field,
            len: s.len(),
            max: MAX_FIELD_BYTES,
        });
    }
    Ok(())
}

/// Appends a `str` field: `u16` big-endian length, then the bytes. The caller has checked
/// the length with [`check_len`]; a longer string is cut at the limit rather than panicking.
pub(crate) fn put_str(out: &mut Vec<u8>, s: &str) {
    let bytes = &s.as_bytes()[..s.len().min(MAX_FIELD_BYTES)];
    out.extend_from_slice(&u16::try_from(bytes.len()).unwrap_or(u16::MAX).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// Reads a `str` field at `*pos`, advancing it.
pub(crate) fn get_str<'b>(bytes: &'b [u8], pos: &mut usize) -> Decoded<&'b str> {
    let len_bytes = bytes.get(*pos..*pos + 2).ok_or("truncated string length")?;
    let len = usize::from(u16::from_be_bytes([len_bytes[0], len_bytes[1]]));
    let s = bytes
        .get(*pos + 2..*pos + 2 + len)
        .ok_or("truncated string")?;
    *pos += 2 + len;
    std::str::from_utf8(s).map_err(|_| "string is not UTF-8")
}

/// Reads 8 bytes at `*pos` as an array, advancing it.
pub(crate) fn get8(bytes: &[u8], pos: &mut usize) -> Decoded<[u8; 8]> {
    let b = bytes.get(*pos..*pos + 8).ok_or("truncated integer")?;
    *pos += 8;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Ok(a)
}

/// The one-byte tag of each term kind.
fn term_tag(term: &Term<'_>) -> u8 {
    match term {
        Term::Tenant(_) => 1,
        Term::ModelName(..) => 2,
        Term::ModelVersion(..) => 3,
        Term::Kind(..) => 4,
        Term::Decision(..) => 5,
        Term::Session(..) => 6,
        Term::Subject(..) => 7,
        Term::App(..) => 8,
        Term::Label(..) => 9,
    }
}

/// The strings of a term after its tenant.
fn term_fields<'a>(term: &Term<'a>) -> [Option<&'a str>; 2] {
    match *term {
        Term::Tenant(_) => [None, None],
        Term::ModelName(_, a)
        | Term::Kind(_, a)
        | Term::Decision(_, a)
        | Term::Session(_, a)
        | Term::Subject(_, a)
        | Term::App(_, a) => [Some(a), None],
        Term::ModelVersion(_, a, b) | Term::Label(_, a, b) => [Some(a), Some(b)],
    }
}

/// Checks every string of a term against [`MAX_FIELD_BYTES`].
pub(crate) fn check_term(term: &Term<'_>, seq: Option<u64>) -> Result<(), IndexError> {
    check_len(term.tenant(), "tenant", seq)?;
    for s in term_fields(term).into_iter().flatten() {
        check_len(s, "term value", seq)?;
    }
    Ok(())
}

/// Term key bytes: `str(tenant) ‖ tag ‖ str(field)…`. Prefix-free (the tag fixes the number of
/// fields and every field carries its length), so one term's chunks never interleave with
/// another's, and one tenant's terms are contiguous.
pub(crate) fn put_term(out: &mut Vec<u8>, term: &Term<'_>) {
    put_str(out, term.tenant());
    out.push(term_tag(term));
    for s in term_fields(term).into_iter().flatten() {
        put_str(out, s);
    }
}

/// The one-byte code of a count dimension.
pub(crate) fn dim_code(dim: Dimension) -> u8 {
    match dim {
        Dimension::Tenant => 1,
        Dimension::Model => 2,
        Dimension::Kind => 3,
        Dimension::Decision => 4,
    }
}

/// Posting chunk header bytes: `last_seq u64 LE ‖ count u32 LE`.
pub(crate) const POSTING_HEADER_BYTES: usize = 12;

/// A new posting chunk holding just `first` (which is also in its key).
pub(crate) fn posting_chunk(first: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(64);
    v.extend_from_slice(&first.to_le_bytes());
    v.extend_from_slice(&1u32.to_le_bytes());
    v
}

/// Reads a posting chunk's `(last_seq, count)`.
pub(crate) fn posting_header(chunk: &[u8]) -> Decoded<(u64, u32)> {
    let h = chunk
        .get(..POSTING_HEADER_BYTES)
        .ok_or("chunk shorter than its header")?;
    let mut last = [0u8; 8];
    last.copy_from_slice(&h[..8]);
    let mut count = [0u8; 4];
    count.copy_from_slice(&h[8..12]);
    Ok((u64::from_le_bytes(last), u32::from_le_bytes(count)))
}

/// Reads the header of a stored posting chunk keyed by `first` that a commit is about to append
/// to, and checks it against the key and the chunk's length without decoding the deltas (the
/// chunk is fully checked when read): the count is at least 1, a lone seq is the key's, and
/// `count − 1` deltas of at least 1 take 1 to 10 bytes each, the last byte ending a varint.
pub(crate) fn posting_append_header(first: u64, chunk: &[u8]) -> Decoded<(u64, u32)> {
    let (last, count) = posting_header(chunk)?;
    let deltas = u64::from(count.checked_sub(1).ok_or("chunk count is zero")?);
    let bytes = (chunk.len() - POSTING_HEADER_BYTES) as u64;
    if bytes < deltas || bytes > deltas * 10 {
        return Err("chunk length does not fit its count");
    }
    let fits = |span: u64| span >= deltas && (deltas > 0 || span == 0);
    if !last.checked_sub(first).is_some_and(fits) {
        return Err("last seq does not fit the key and the count");
    }
    if chunk.last().is_some_and(|b| deltas > 0 && b & 0x80 != 0) {
        return Err("chunk ends inside a varint");
    }
    Ok((last, count))
}

/// Appends `seq` (greater than the chunk's last seq, checked by the caller) to a posting
/// chunk whose header is valid.
pub(crate) fn posting_append(chunk: &mut Vec<u8>, last: u64, count: u32, seq: u64) {
    put_varint(chunk, seq - last);
    chunk[..8].copy_from_slice(&seq.to_le_bytes());
    chunk[8..12].copy_from_slice(&(count + 1).to_le_bytes());
}

/// Decodes a posting chunk whose key carries `first`, pushing its seqs onto `out`.
pub(crate) fn decode_postings(first: u64, chunk: &[u8], out: &mut Vec<u64>) -> Decoded<()> {
    let (last, count) = posting_header(chunk)?;
    if count == 0 {
        return Err("chunk count is zero");
    }
    let mut pos = POSTING_HEADER_BYTES;
    let mut seq = first;
    out.push(seq);
    for _ in 1..count {
        let d = get_varint(chunk, &mut pos)?;
        if d == 0 {
            return Err("seqs not increasing");
        }
        seq = seq.checked_add(d).ok_or("seq overflows")?;
        out.push(seq);
    }
    if pos != chunk.len() {
        return Err("trailing bytes after the last seq");
    }
    if seq != last {
        return Err("last seq differs from the header");
    }
    Ok(())
}

/// Pair chunk header bytes: `last_seq u64 LE ‖ last_value u64 LE ‖ count u32 LE`.
pub(crate) const PAIR_HEADER_BYTES: usize = 20;

/// The header of a chunk of `(seq, value)` pairs (logged-at and event-time tables).
#[derive(Debug, Clone, Copy)]
pub(crate) struct PairHeader {
    /// The last pair's seq.
    pub last_seq: u64,
    /// The last pair's value (as its 64 bits).
    pub last_value: u64,
    /// Number of pairs.
    pub count: u32,
}

/// Reads a pair chunk's header.
pub(crate) fn pair_header(chunk: &[u8]) -> Decoded<PairHeader> {
    let h = chunk
        .get(..PAIR_HEADER_BYTES)
        .ok_or("chunk shorter than its header")?;
    let mut pos = 0;
    let last_seq = u64::from_le_bytes(get8(h, &mut pos)?);
    let last_value = u64::from_le_bytes(get8(h, &mut pos)?);
    let mut count = [0u8; 4];
    count.copy_from_slice(&h[16..20]);
    Ok(PairHeader {
        last_seq,
        last_value,
        count: u32::from_le_bytes(count),
    })
}

/// A new, empty pair chunk whose first pair will be measured from `(first_seq, base)`.
pub(crate) fn pair_chunk(first_seq: u64, base: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(64);
    v.extend_from_slice(&first_seq.to_le_bytes());
    v.extend_from_slice(&base.to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v
}

/// Appends a pair: seq delta from the previous pair (the key's first seq for the first pair,
/// so 0), then the zigzag of the value's wrapping difference from the previous value (the
/// chunk's base for the first pair).
pub(crate) fn pair_append(chunk: &mut Vec<u8>, h: &mut PairHeader, seq: u64, value: u64) {
    put_varint(chunk, seq.wrapping_sub(h.last_seq));
    put_varint(
        chunk,
        zigzag(value.wrapping_sub(h.last_value).cast_signed()),
    );
    h.last_seq = seq;
    h.last_value = value;
    h.count += 1;
    chunk[..8].copy_from_slice(&seq.to_le_bytes());
    chunk[8..16].copy_from_slice(&value.to_le_bytes());
    chunk[16..20].copy_from_slice(&h.count.to_le_bytes());
}

/// Decodes a pair chunk keyed by `(first_seq, base)`, pushing its pairs onto `out`. Checks
/// structure only (seqs strictly increasing from `first_seq`); callers check value ranges.
pub(crate) fn decode_pairs(
    first_seq: u64,
    base: u64,
    chunk: &[u8],
    out: &mut Vec<(u64, u64)>,
) -> Decoded<()> {
    let h = pair_header(chunk)?;
    if h.count == 0 {
        return Err("chunk count is zero");
    }
    let mut pos = PAIR_HEADER_BYTES;
    let (mut seq, mut value) = (first_seq, base);
    for i in 0..h.count {
        let d = get_varint(chunk, &mut pos)?;
        if (i == 0) != (d == 0) {
            return Err("seqs not increasing from the key's first seq");
        }
        seq = seq.checked_add(d).ok_or("seq overflows")?;
        value = value.wrapping_add(unzigzag(get_varint(chunk, &mut pos)?).cast_unsigned());
        out.push((seq, value));
    }
    if pos != chunk.len() {
        return Err("trailing bytes after the last pair");
    }
    if (seq, value) != (h.last_seq, h.last_value) {
        return Err("last pair differs from the header");
    }
    Ok(())
}

/// A time pair: `(event time ns, seq)`, ordered by time, then seq.
pub(crate) type TimePair = (i64, u64);

/// Key of the event-time chunk that starts at `first`: `str(tenant) ‖ i64key(time) ‖ seq BE`.
pub(crate) fn time_key(out: &mut Vec<u8>, tenant_prefix: &[u8], first: TimePair) {
    out.clear();
    out.extend_from_slice(tenant_prefix);
    out.extend_from_slice(&i64_key(first.0));
    out.extend_from_slice(&first.1.to_be_bytes());
}

/// The first pair of an event-time chunk key whose tenant prefix is `prefix_len` bytes.
pub(crate) fn time_key_pair(key: &[u8], prefix_len: usize) -> Decoded<TimePair> {
    let rest = key
        .get(prefix_len..)
        .filter(|r| r.len() == 16)
        .ok_or("key is not tenant, time and seq")?;
    let mut pos = 0;
    let time = i64_from_key(get8(rest, &mut pos)?);
    Ok((time, u64::from_be_bytes(get8(rest, &mut pos)?)))
}

/// A new time chunk holding only `first` (its key's pair): the header `last_seq ‖ last_time
/// ‖ count = 1`.
pub(crate) fn time_chunk(first: TimePair) -> (Vec<u8>, PairHeader) {
    let mut v = Vec::with_capacity(64);
    v.extend_from_slice(&first.1.to_le_bytes());
    v.extend_from_slice(&first.0.to_le_bytes());
    v.extend_from_slice(&1u32.to_le_bytes());
    let h = PairHeader {
        last_seq: first.1,
        last_value: first.0.cast_unsigned(),
        count: 1,
    };
    (v, h)
}

/// The last pair a time chunk's header names.
pub(crate) fn time_chunk_last(h: PairHeader) -> TimePair {
    (h.last_value.cast_signed(), h.last_seq)
}

/// Appends `pair`, which must follow the chunk's last pair: the time delta (≥ 0), then the
/// zigzag of the seq's wrapping difference from the previous seq.
pub(crate) fn time_chunk_append(chunk: &mut Vec<u8>, h: &mut PairHeader, pair: TimePair) {
    debug_assert!(pair > time_chunk_last(*h), "time pairs must increase");
    let delta = pair
        .0
        .wrapping_sub(h.last_value.cast_signed())
        .cast_unsigned();
    put_varint(chunk, delta);
    put_varint(chunk, zigzag(pair.1.wrapping_sub(h.last_seq).cast_signed()));
    h.last_seq = pair.1;
    h.last_value = pair.0.cast_unsigned();
    h.count += 1;
    chunk[..8].copy_from_slice(&pair.1.to_le_bytes());
    chunk[8..16].copy_from_slice(&pair.0.to_le_bytes());
    chunk[16..20].copy_from_slice(&h.count.to_le_bytes());
}

/// Reads the header of a stored time chunk that starts at `first` and that a commit is about
/// to append to, checking it against the key and the chunk's length without decoding it:
/// `count − 1` steps of two varints take 2 to 20 bytes each, the last byte ends a varint.
pub(crate) fn time_append_header(first: TimePair, chunk: &[u8]) -> Decoded<PairHeader> {
    let h = pair_header(chunk)?;
    let steps = u64::from(h.count)
        .checked_sub(1)
        .ok_or("chunk count is zero")?;
    let bytes = (chunk.len() - PAIR_HEADER_BYTES) as u64;
    if bytes < steps * 2 || bytes > steps * 20 {
        return Err("chunk length does not fit its count");
    }
    let last = time_chunk_last(h);
    if (steps == 0 && last != first) || (steps > 0 && last <= first) {
        return Err("last pair does not fit the key and the count");
    }
    if steps > 0 && chunk.last().is_some_and(|b| b & 0x80 != 0) {
        return Err("chunk ends inside a varint");
    }
    Ok(h)
}

/// Decodes a time chunk that starts at `first`, pushing its pairs onto `out` in increasing
/// `(time, seq)` order; refuses pairs that do not increase and a header that disagrees.
pub(crate) fn decode_time_chunk(
    first: TimePair,
    chunk: &[u8],
    out: &mut Vec<TimePair>,
) -> Decoded<()> {
    let h = pair_header(chunk)?;
    if h.count == 0 {
        return Err("chunk count is zero");
    }
    let mut pos = PAIR_HEADER_BYTES;
    let (mut time, mut seq) = first;
    out.push(first);
    for _ in 1..h.count {
        let dt = get_varint(chunk, &mut pos)?;
        let ds = unzigzag(get_varint(chunk, &mut pos)?);
        time = i64::try_from(dt)
            .ok()
            .and_then(|dt| time.checked_add(dt))
            .ok_or("time overflows")?;
        let next_seq = seq.wrapping_add(ds.cast_unsigned());
        if dt == 0 && next_seq <= seq {
            return Err("pairs not increasing in (time, seq) order");
        }
        seq = next_seq;
        out.push((time, seq));
    }
    if pos != chunk.len() {
        return Err("trailing bytes after the last pair");
    }
    if (time, seq) != time_chunk_last(h) {
        return Err("last pair differs from the header");
    }
    Ok(())
}

/// Lower-case hex of a key, for error messages.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_and_refuse_overflow() {
        for v in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            let mut pos = 0;
            assert_eq!(get_varint(&b, &mut pos), Ok(v));
            assert_eq!(pos, b.len());
        }
        let mut pos = 0;
        assert!(get_varint(&[0xff; 10], &mut pos).is_err());
        let mut pos = 0;
        assert!(get_varint(&[0x80], &mut pos).is_err());
    }

    #[test]
    fn signed_keys_sort_like_numbers() {
        let vals = [i64::MIN, -5, -1, 0, 1, 7, i64::MAX];
        for w in vals.windows(2) {
            assert!(i64_key(w[0]) < i64_key(w[1]));
        }
        for v in vals {
            assert_eq!(i64_from_key(i64_key(v)), v);
            assert_eq!(unzigzag(zigzag(v)), v);
        }
    }

    #[test]
    fn append_headers_accept_real_chunks_and_refuse_inconsistent_ones() {
        let mut c = posting_chunk(7);
        assert_eq!(posting_append_header(7, &c), Ok((7, 1)));
        assert!(
            posting_append_header(6, &c).is_err(),
            "a lone seq is the key's"
        );
        posting_append(&mut c, 7, 1, 9);
        posting_append(&mut c, 9, 2, 400);
        assert_eq!(posting_append_header(7, &c), Ok((400, 3)));
        let mut seqs = Vec::new();
        assert_eq!(decode_postings(7, &c, &mut seqs), Ok(()));
        assert_eq!(seqs, [7, 9, 400]);
        assert!(
            posting_append_header(399, &c).is_err(),
            "span below the count"
        );
        assert!(
            posting_append_header(7, &c[..c.len() - 1]).is_err(),
            "ends in a varint"
        );
        let short = [1, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0x80];
        assert!(
            posting_append_header(0, &short).is_err(),
            "too short for its count"
        );
    }

    #[test]
    fn time_chunks_round_trip_and_refuse_disorder() {
        let first = (-5i64, 40u64);
        let (mut c, mut h) = time_chunk(first);
        let pairs = [first, (-5, 41), (7, 3), (7, 90), (i64::MAX, 0)];
        for p in &pairs[1..] {
            time_chunk_append(&mut c, &mut h, *p);
        }
        let mut out = Vec::new();
        assert_eq!(decode_time_chunk(first, &c, &mut out), Ok(()));
        assert_eq!(out, pairs);
        assert_eq!(time_append_header(first, &c).map(|h| h.count), Ok(5));
        // The same bytes under a later first pair make the second step go back in seq.
        assert!(decode_time_chunk((-5, 41), &c, &mut Vec::new()).is_err());
        assert!(
            time_append_header((-5, 41), &c[..20]).is_err(),
            "count says 5"
        );
        let mut key = Vec::new();
        time_key(&mut key, b"\x00\x01t", (-5, 40));
        assert_eq!(time_key_pair(&key, 3), Ok((-5, 40)));
        assert!(time_key_pair(&key[..18], 3).is_err());
    }

    #[test]
    fn pair_chunks_round_trip() {
        let mut c = pair_chunk(10, 1000);
        let mut h = pair_header(&c).unwrap_or(PairHeader {
            last_seq: 0,
            last_value: 0,
            count: 0,
        });
        let pairs = [(10u64, 990u64), (11, 2000), (40, 1500), (41, u64::MAX)];
        for (s, v) in pairs {
            pair_append(&mut c, &mut h, s, v);
        }
        let mut out = Vec::new();
        assert_eq!(decode_pairs(10, 1000, &c, &mut out), Ok(()));
        assert_eq!(out, pairs);
    }
}
