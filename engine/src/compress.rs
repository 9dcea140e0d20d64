//! Payload compression (see [`crate::PayloadCompression`] and `docs/design.md`, "Compressed
//! payloads"): one Zstandard frame per payload, made in the appending thread before
//! encryption, opened after decryption on reads. A frame is made either without a dictionary
//! or with a built-in one ([`ZstdDictionary`]), whose id the frame header states (RFC 8878,
//! `Dictionary_ID`): reads pick the dictionary by that id, so the entry format needs no other
//! mark.
//!
//! A frame always states its content size (the compressor writes it); reads refuse a frame
//! that does not, or that states more than [`MAX_PAYLOAD_BYTES`], before allocating, and
//! decompress into a buffer of exactly that size, so a decompression bomb costs nothing but a
//! typed error.

use std::cell::RefCell;
use std::sync::OnceLock;

use zeroize::Zeroizing;
use zstd::zstd_safe::{CCtx, CDict, DCtx, DDict};

use crate::options::ZstdDictionary;
use crate::receipt::MAX_PAYLOAD_BYTES;

/// The bytes of built-in dictionary 1 (`trailmix-1`, id [`BUILT_IN_1_ID`]): part of the
/// format, never changed (a new dictionary gets a new id and file). How it was made:
/// `benches/examples/zdict_train.rs`; its blake3 is pinned by a test and in design.md.
pub static BUILT_IN_1: &[u8] = include_bytes!("zdict/trailmix-1.zdict");

/// The `Dictionary_ID` of [`BUILT_IN_1`] (in its header, and in every frame made with it):
/// above the range RFC 8878 reserves for registered dictionaries (0 to 32767).
pub const BUILT_IN_1_ID: u32 = 32_769;

/// The levels [`crate::DbOptions`] accepts for zstd (1 to 22): one prepared dictionary each.
const LEVELS: usize = 22;

thread_local! {
    // A compression context per appending thread: making one per payload allocates and
    // initialises its tables each time (the bulk API's one-shot call does exactly that).
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { RefCell::new(None) };
    // Contexts for frames with a dictionary: the prepared dictionary is passed per call (it
    // is process-wide), so one context serves every level.
    static DICT_COMPRESSOR: RefCell<Option<CCtx<'static>>> = const { RefCell::new(None) };
    static DICT_DECOMPRESSOR: RefCell<Option<DCtx<'static>>> = const { RefCell::new(None) };
}

/// Built-in dictionary 1 prepared for compression at each level, once per process: preparing
/// it (digesting its content, building its entropy tables) costs far more than a payload.
static ENCODER_DICTIONARIES_1: [OnceLock<Option<CDict<'static>>>; LEVELS] =
    [const { OnceLock::new() }; LEVELS];
/// Built-in dictionary 1 prepared for decompression, once per process.
static DECODER_DICTIONARY_1: OnceLock<Option<DDict<'static>>> = OnceLock::new();

fn encoder_dictionary(dictionary: ZstdDictionary, level: i32) -> Option<&'static CDict<'static>> {
    let ZstdDictionary::BuiltIn1 = dictionary;
    let slot = ENCODER_DICTIONARIES_1.get(usize::try_from(level).ok()?.checked_sub(1)?)?;
    slot.get_or_init(|| CDict::try_create(BUILT_IN_1, level))
        .as_ref()
}

/// The prepared decoder dictionary of a frame's `Dictionary_ID`; `None` when this build has no
/// dictionary of that id.
fn decoder_dictionary(id: u32) -> Option<Result<&'static DDict<'static>, String>> {
    (id == BUILT_IN_1_ID).then(|| {
        DECODER_DICTIONARY_1
            .get_or_init(|| DDict::try_create(BUILT_IN_1))
            .as_ref()
            .ok_or_else(|| "compressed payload: cannot prepare the built-in dictionary".to_owned())
    })
}

/// A dictionary frame at most this many parts in [`POOR_FRAME_DENOMINATOR`] of the payload is
/// kept as it is; a larger one (or none) is compared with the dictionary-less frame. Measured
/// on 20 k payloads of 512 B (docs/performance.md, fourteenth session): the built-in
/// dictionary's frames of the realistic corpus are 0.30-0.38 of the payload, never near the
/// bar, so they never pay a second compression; those of hex payloads are 0.70-0.74, where plain
/// zstd 3 makes 0.61-0.63 (hex is not text the dictionary knows, and its entropy tables fit
/// that text, not hex).
const POOR_FRAME_NUMERATOR: usize = 1;
/// See [`POOR_FRAME_NUMERATOR`]: the bar is half the payload.
const POOR_FRAME_DENOMINATOR: usize = 2;

/// `plain` compressed at zstd `level` (1 to 22), with `dictionary` when given (public for
/// tests and probes), or `None` when that is not smaller (the payload is then stored as it
/// is) or the compressor fails (the same: compression is an optimisation). With a dictionary,
/// a frame that gains poorly (over half the payload) is compared with a frame made without it,
/// and the smaller one is kept: reads tell them apart by the frame's `Dictionary_ID`, so
/// either is a valid stored payload. Zeroized on drop: it is the payload in another form.
#[must_use]
pub fn compress(
    level: i32,
    dictionary: Option<ZstdDictionary>,
    plain: &[u8],
) -> Option<Zeroizing<Vec<u8>>> {
    // The frame's few bytes of header rule out a gain on tiny payloads; skip the work.
    if plain.len() < 16 {
        return None;
    }
    let Some(dictionary) = dictionary else {
        return plain_frame(level, plain, plain.len());
    };
    let with_dictionary = dictionary_frame(level, dictionary, plain);
    let poor = with_dictionary.as_ref().is_none_or(|frame| {
        frame.len() * POOR_FRAME_DENOMINATOR > plain.len() * POOR_FRAME_NUMERATOR
    });
    if !poor {
        return with_dictionary;
    }
    let bound = with_dictionary.as_ref().map_or(plain.len(), |f| f.len());
    plain_frame(level, plain, bound).or(with_dictionary)
}

/// A frame made with `dictionary`, smaller than `plain`, or `None`.
fn dictionary_frame(
    level: i32,
    dictionary: ZstdDictionary,
    plain: &[u8],
) -> Option<Zeroizing<Vec<u8>>> {
    // At most `plain.len() - 1` bytes: a frame that does not fit is no gain.
    let mut out = Zeroizing::new(Vec::with_capacity(plain.len() - 1));
    let prepared = encoder_dictionary(dictionary, level)?;
    DICT_COMPRESSOR.with(|cell| {
        let mut cell = cell.try_borrow_mut().ok()?;
        if cell.is_none() {
            *cell = Some(CCtx::try_create()?);
        }
        cell.as_mut()?
            .compress_using_cdict(&mut *out, plain, prepared)
            .ok()
    })?;
    (out.len() < plain.len()).then_some(out)
}

/// A frame made without a dictionary, smaller than `bound` bytes (at most the payload's
/// length), or `None`.
fn plain_frame(level: i32, plain: &[u8], bound: usize) -> Option<Zeroizing<Vec<u8>>> {
    // The output's capacity is the compressor's limit: a frame that does not fit fails fast.
    let mut out = Zeroizing::new(Vec::with_capacity(bound.checked_sub(1)?));
    COMPRESSOR.with(|cell| {
        let mut cell = cell.try_borrow_mut().ok()?;
        if cell.as_ref().is_none_or(|(at, _)| *at != level) {
            *cell = Some((level, zstd::bulk::Compressor::new(level).ok()?));
        }
        let (_, compressor) = cell.as_mut()?;
        compressor.compress_to_buffer(plain, &mut *out).ok()
    })?;
    (out.len() < bound).then_some(out)
}

/// Why a stored payload does not open: damage, or bytes that only a newer build reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// The bytes are not what any build writes (a bad frame or ciphertext): the store is
    /// damaged ([`crate::Error::Damaged`]).
    #[error("{0}")]
    Damaged(String),
    /// The bytes are well formed but use something this build lacks (a zstd dictionary it
    /// does not have): a newer build wrote them ([`crate::Error::Unsupported`]).
    #[error("{0}")]
    Unsupported(String),
}

impl PayloadError {
    /// The engine error for the entry at `seq`.
    pub(crate) fn at(self, seq: crate::wal::Seq) -> crate::Error {
        match self {
            PayloadError::Damaged(detail) => crate::Error::Damaged { seq, detail },
            PayloadError::Unsupported(what) => crate::Error::Unsupported { seq, what },
        }
    }
}

impl From<String> for PayloadError {
    fn from(detail: String) -> PayloadError {
        PayloadError::Damaged(detail)
    }
}

/// What a stored compressed payload decompresses to: the payload, or why the bytes are not a
/// frame of at most [`MAX_PAYLOAD_BYTES`] that this build can open.
///
/// # Errors
/// [`PayloadError::Unsupported`] when the frame names a dictionary this build does not have
/// (a newer build wrote it); [`PayloadError::Damaged`] when the bytes are not one complete
/// zstd frame that states its content size, the size is over the limit, or the frame does not
/// decompress to exactly that size.
pub fn decompress(frame: &[u8]) -> Result<Vec<u8>, PayloadError> {
    let size = match zstd::zstd_safe::get_frame_content_size(frame) {
        Ok(Some(size)) => size,
        Ok(None) => {
            return Err(PayloadError::Damaged(
                "compressed payload: the frame does not state its size".into(),
            ));
        }
        Err(_) => {
            return Err(PayloadError::Damaged(
                "compressed payload: not a zstd frame".into(),
            ));
        }
    };
    let size = usize::try_from(size)
        .ok()
        .filter(|s| *s <= MAX_PAYLOAD_BYTES)
        .ok_or_else(|| {
            format!(
                "compressed payload: states {size} bytes, over the {MAX_PAYLOAD_BYTES}-byte limit"
            )
        })?;
    let mut plain = Vec::with_capacity(size);
    let written = match zstd::zstd_safe::get_dict_id_from_frame(frame) {
        None => DECOMPRESSOR.with(|cell| {
            let mut cell = cell
                .try_borrow_mut()
                .map_err(|_| "compressed payload: decompressor busy".to_owned())?;
            if cell.is_none() {
                *cell = Some(
                    zstd::bulk::Decompressor::new()
                        .map_err(|e| format!("compressed payload: decompressor: {e}"))?,
                );
            }
            let decompressor = cell
                .as_mut()
                .ok_or_else(|| "compressed payload: no decompressor".to_owned())?;
            decompressor
                .decompress_to_buffer(frame, &mut plain)
                .map_err(|e| format!("compressed payload: {e}"))
        })?,
        Some(id) => {
            let prepared = decoder_dictionary(id.get()).ok_or_else(|| {
                PayloadError::Unsupported(format!(
                    "compressed payload: unsupported zstd dictionary id {id} (this build has \
                     built-in dictionary {BUILT_IN_1_ID} only; a newer build wrote it)"
                ))
            })??;
            DICT_DECOMPRESSOR.with(|cell| {
                let mut cell = cell
                    .try_borrow_mut()
                    .map_err(|_| "compressed payload: decompressor busy".to_owned())?;
                if cell.is_none() {
                    *cell = DCtx::try_create();
                }
                cell.as_mut()
                    .ok_or_else(|| "compressed payload: no decompressor".to_owned())?
                    .decompress_using_ddict(&mut plain, frame, prepared)
                    .map_err(|code| {
                        format!(
                            "compressed payload: {}",
                            zstd::zstd_safe::get_error_name(code)
                        )
                    })
            })?
        }
    };
    if written != size {
        return Err(PayloadError::Damaged(format!(
            "compressed payload: {written} bytes where the frame states {size}"
        )));
    }
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_raw_when_no_gain() {
        let text = b"{\"input\":\"the same words again and again and again and again\"}".repeat(8);
        let frame = compress(3, None, &text).expect("compresses");
        assert!(frame.len() < text.len());
        assert_eq!(decompress(&frame).expect("opens"), text);
        // Other levels make other frames of the same payload.
        assert_eq!(
            decompress(&compress(19, None, &text).expect("19")).expect("opens"),
            text
        );
        // Bytes of a hash stream: nothing for zstd to gain, so no frame comes back.
        let noise: Vec<u8> = (0..16u64)
            .flat_map(|i| *blake3::hash(&i.to_le_bytes()).as_bytes())
            .collect();
        assert!(compress(3, None, &noise).is_none());
        assert!(compress(3, None, b"{}").is_none());
    }

    #[test]
    fn bombs_and_garbage_are_errors() {
        let zeros = vec![0u8; MAX_PAYLOAD_BYTES + 1];
        let bomb = zstd::bulk::compress(&zeros, 3).expect("compresses");
        assert!(matches!(
            decompress(&bomb).expect_err("bomb"),
            PayloadError::Damaged(detail) if detail.contains("limit")
        ));
        assert!(decompress(b"not a frame").is_err());
        let frame = compress(3, None, &b"abcabcabcabcabcabcabcabcabcabc".repeat(4)).expect("frame");
        assert!(decompress(&frame[..frame.len() - 2]).is_err());
        // A frame without its content size.
        let mut streamed = Vec::new();
        {
            let mut encoder = zstd::stream::write::Encoder::new(&mut streamed, 3).expect("enc");
            std::io::Write::write_all(&mut encoder, &[7u8; 100]).expect("write");
            encoder.finish().expect("finish");
        }
        assert!(decompress(&streamed).is_err());
    }

    /// The built-in dictionary is part of the format: its bytes must never change.
    #[test]
    fn built_in_dictionary_is_frozen() {
        assert_eq!(
            blake3::hash(BUILT_IN_1).to_hex().as_str(),
            "0de45e2bf70388f83894ddc582092808e67b0922f6a22b6f5551c105596b93d9"
        );
        assert_eq!(BUILT_IN_1.len(), 16_384);
        assert_eq!(BUILT_IN_1[..4], [0x37, 0xa4, 0x30, 0xec]);
        assert_eq!(BUILT_IN_1[4..8], BUILT_IN_1_ID.to_le_bytes());
        assert_eq!(ZstdDictionary::BuiltIn1.id(), BUILT_IN_1_ID);
    }

    #[test]
    fn dictionary_frames_name_their_dictionary_and_round_trip() {
        let text = br#"{"input":[{"content":"Please check the status of the request","role":"user"}],"output":{"content":"The request is pending review.","role":"assistant"}}"#;
        let dict = Some(ZstdDictionary::BuiltIn1);
        let frame = compress(3, dict, text).expect("compresses");
        let plain_frame = compress(3, None, text).expect("compresses");
        assert!(
            frame.len() < plain_frame.len(),
            "{} vs {}",
            frame.len(),
            plain_frame.len()
        );
        assert_eq!(
            zstd::zstd_safe::get_dict_id_from_frame(&frame).map(std::num::NonZeroU32::get),
            Some(BUILT_IN_1_ID)
        );
        assert_eq!(zstd::zstd_safe::get_dict_id_from_frame(&plain_frame), None);
        assert_eq!(decompress(&frame).expect("opens"), text);
        for level in [1, 19, 22] {
            let frame = compress(level, dict, text).expect("compresses");
            assert_eq!(decompress(&frame).expect("opens"), text, "level {level}");
        }
        // What a build from before dictionaries does with such a frame (its only path: a
        // decompressor without a dictionary): zstd refuses it by the dictionary id, it never
        // decodes it into other bytes.
        let mut old = zstd::bulk::Decompressor::new().expect("decompressor");
        let err = old
            .decompress(&frame, MAX_PAYLOAD_BYTES)
            .expect_err("no dictionary");
        assert!(err.to_string().contains("Dictionary mismatch"), "{err}");
        // Damaged frames are errors, never panics.
        for cut in 1..frame.len() {
            assert!(decompress(&frame[..cut]).is_err(), "cut at {cut}");
        }
        let mut flipped = frame.to_vec();
        let last = flipped.len() - 3;
        flipped[last] ^= 0x55;
        let _ = decompress(&flipped);
    }

    #[test]
    fn unknown_dictionary_ids_are_refused_by_name() {
        let mut other = BUILT_IN_1.to_vec();
        other[4..8].copy_from_slice(&40_000u32.to_le_bytes());
        let mut compressor =
            zstd::bulk::Compressor::with_dictionary(3, &other).expect("compressor");
        let frame = compressor
            .compress(&b"the same words again and again and again".repeat(4))
            .expect("compresses");
        let err = decompress(&frame).expect_err("unknown dictionary");
        assert!(
            matches!(&err, PayloadError::Unsupported(what)
                if what.contains("unsupported zstd dictionary id 40000")),
            "{err:?}"
        );
    }
}
