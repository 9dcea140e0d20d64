//! Payload compression (see [`crate::PayloadCompression`] and `docs/design.md`, "Entry
//! layout"): one Zstandard frame per payload, made in the appending thread before encryption,
//! opened after decryption on reads.
//!
//! A frame always states its content size (the compressor writes it); reads refuse a frame
//! that does not, or that states more than [`MAX_PAYLOAD_BYTES`], before allocating, and
//! decompress into a buffer of exactly that size, so a decompression bomb costs nothing but a
//! typed error.

use std::cell::RefCell;

use zeroize::Zeroizing;

use crate::receipt::MAX_PAYLOAD_BYTES;

thread_local! {
    // A compression context per appending thread: making one per payload allocates and
    // initialises its tables each time (the bulk API's one-shot call does exactly that).
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { RefCell::new(None) };
}

/// `plain` compressed at zstd `level` (public for tests and probes), or `None` when that is not smaller (the payload is then
/// stored as it is) or the compressor fails (the same: compression is an optimisation).
/// Zeroized on drop: it is the payload in another form.
#[must_use]
pub fn compress(level: i32, plain: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    // The frame's few bytes of header rule out a gain on tiny payloads; skip the work.
    if plain.len() < 16 {
        return None;
    }
    COMPRESSOR.with(|cell| {
        let mut cell = cell.try_borrow_mut().ok()?;
        if cell.as_ref().is_none_or(|(at, _)| *at != level) {
            *cell = Some((level, zstd::bulk::Compressor::new(level).ok()?));
        }
        let (_, compressor) = cell.as_mut()?;
        // At most `plain.len() - 1` bytes: a frame that does not fit is no gain.
        let mut out = Zeroizing::new(Vec::with_capacity(plain.len() - 1));
        compressor.compress_to_buffer(plain, &mut *out).ok()?;
        (out.len() < plain.len()).then_some(out)
    })
}

/// What a stored compressed payload decompresses to: the payload, or a message saying why the
/// bytes are not a frame of at most [`MAX_PAYLOAD_BYTES`] (the caller makes it `Damaged`).
///
/// # Errors
/// A message when the bytes are not one complete zstd frame that states its content size, the
/// size is over the limit, or the frame does not decompress to exactly that size.
pub fn decompress(frame: &[u8]) -> Result<Vec<u8>, String> {
    let size = match zstd::zstd_safe::get_frame_content_size(frame) {
        Ok(Some(size)) => size,
        Ok(None) => return Err("compressed payload: the frame does not state its size".into()),
        Err(_) => return Err("compressed payload: not a zstd frame".into()),
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
    let written = DECOMPRESSOR.with(|cell| {
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
    })?;
    if written != size {
        return Err(format!(
            "compressed payload: {written} bytes where the frame states {size}"
        ));
    }
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_raw_when_no_gain() {
        let text = b"{\"input\":\"the same words again and again and again and again\"}".repeat(8);
        let frame = compress(3, &text).expect("compresses");
        assert!(frame.len() < text.len());
        assert_eq!(decompress(&frame).expect("opens"), text);
        // Other levels make other frames of the same payload.
        assert_eq!(
            decompress(&compress(19, &text).expect("19")).expect("opens"),
            text
        );
        // Bytes of a hash stream: nothing for zstd to gain, so no frame comes back.
        let noise: Vec<u8> = (0..16u64)
            .flat_map(|i| *blake3::hash(&i.to_le_bytes()).as_bytes())
            .collect();
        assert!(compress(3, &noise).is_none());
        assert!(compress(3, b"{}").is_none());
    }

    #[test]
    fn bombs_and_garbage_are_errors() {
        let zeros = vec![0u8; MAX_PAYLOAD_BYTES + 1];
        let bomb = zstd::bulk::compress(&zeros, 3).expect("compresses");
        assert!(decompress(&bomb).expect_err("bomb").contains("limit"));
        assert!(decompress(b"not a frame").is_err());
        let frame = compress(3, &b"abcabcabcabcabcabcabcabcabcabc".repeat(4)).expect("frame");
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
}
