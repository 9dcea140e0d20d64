//! Builds the engine's built-in zstd dictionary from the synthetic training corpus
//! ([`trailmix_benches::dict_corpus`]), and evaluates a dictionary on the measurement corpus
//! ([`trailmix_benches::realistic`], another seed and vocabulary: cross-trained figures).
//! Needs the `zdict` feature (the C library's dictionary builder, which normal builds leave
//! out):
//!
//! ```sh
//! cargo run --release -p trailmix-benches --features zdict --example zdict_train -- \
//!     train 16384 20000 32769 engine/src/zdict/trailmix-1.zdict
//! cargo run --release -p trailmix-benches --features zdict --example zdict_train -- \
//!     eval engine/src/zdict/trailmix-1.zdict 3 5000
//! ```
//!
//! `train SIZE COUNT ID OUT`: samples 0..COUNT of the corpus (each the canonical payload the
//! engine would store for it), `zstd::dict::from_samples(samples, SIZE)` (zstd's default
//! trainer, deterministic for the same samples and library version), then the dictionary id
//! in the dictionary header (bytes 4..8, little-endian) set to `ID`, so that frames made with
//! it name that id; prints the blake3 of the result. The engine's dictionary was made with
//! the first command above (zstd 1.5.7, `zstd-sys` 2.1.3); it is frozen: a new dictionary
//! gets a new id and a new file, never this one's id.
//!
//! `eval DICT|none LEVEL N [FILE]`: compresses receipts 0..N of the measurement corpus (512 B
//! target), or the first N payloads of FILE (4-byte little-endian length, then the bytes, as
//! `payload_corpus` writes them), each alone, with one reused compression context (and the dictionary prepared
//! once), in `measure`; prints stored / raw, where stored is the frame or the payload when the
//! frame is not smaller (as the engine stores it). Instructions per payload: callgrind with
//! `--toggle-collect='zdict_train::measure*'`, divided by N.

use std::io::Write as _;

use trailmix_benches::query_data::SEED;
use trailmix_benches::rigs::BoxError;
use trailmix_benches::{dict_corpus, realistic};
use trailmix_db::receipt::{ActorType, Kind, Receipt, Timestamp};

fn builder(n: u64) -> trailmix_db::receipt::ReceiptBuilder {
    Receipt::builder("acme", format!("evt-{n}"), Kind::LlmCall)
        .app_id("probe")
        .actor_type(ActorType::Agent)
        .event_time(Timestamp::from_unix_nanos(1_790_812_800_000_000_000))
}

fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["train", size, count, id, out] => train(size.parse()?, count.parse()?, id.parse()?, out),
        ["eval", dict, level, count] => eval(dict, level.parse()?, count.parse()?, None),
        ["eval", dict, level, count, file] => {
            eval(dict, level.parse()?, count.parse()?, Some(file))
        }
        _ => {
            Err("usage: zdict_train train SIZE COUNT ID OUT | eval DICT|none LEVEL N [FILE]".into())
        }
    }
}

#[allow(clippy::cast_precision_loss, reason = "an average for display")]
fn train(size: usize, count: u64, id: u32, out: &str) -> Result<(), BoxError> {
    let samples = (0..count)
        .map(|n| {
            Ok(dict_corpus::apply(n, builder(n))
                .build()?
                .payload()
                .to_vec())
        })
        .collect::<Result<Vec<Vec<u8>>, BoxError>>()?;
    let raw: usize = samples.iter().map(Vec::len).sum();
    let mut dict = zstd::dict::from_samples(&samples, size)?;
    // A zstd dictionary starts with its magic number, then its id (RFC 8878, section 5).
    if dict.len() < 8 || dict[..4] != [0x37, 0xa4, 0x30, 0xec] {
        return Err("the trainer returned a raw-content dictionary, not a zstd one".into());
    }
    dict[4..8].copy_from_slice(&id.to_le_bytes());
    std::fs::File::create(out)?.write_all(&dict)?;
    println!(
        "{count} samples, {raw} bytes ({:.0} B average); dictionary of {} bytes, id {id}, blake3 {}",
        raw as f64 / count as f64,
        dict.len(),
        blake3::hash(&dict)
    );
    Ok(())
}

#[allow(clippy::cast_precision_loss, reason = "a ratio for display")]
fn eval(dict: &str, level: i32, count: u64, file: Option<&str>) -> Result<(), BoxError> {
    let payloads = match file {
        Some(file) => read_payloads(file, count)?,
        None => realistic_payloads(count)?,
    };
    let dict = if dict == "none" {
        None
    } else {
        Some(std::fs::read(dict)?)
    };
    let (raw, stored) = measure(dict.as_deref(), level, &payloads)?;
    println!(
        "{} payloads of {}, level {level}: {raw} -> {stored} bytes, stored/raw {:.3}",
        payloads.len(),
        file.unwrap_or("the realistic corpus"),
        stored as f64 / raw as f64
    );
    Ok(())
}

/// Payloads written as a 4-byte little-endian length and the bytes (as `payload_corpus`
/// writes them), at most `count`.
fn read_payloads(file: &str, count: u64) -> Result<Vec<Vec<u8>>, BoxError> {
    let bytes = std::fs::read(file)?;
    let mut out = Vec::new();
    let mut at = 0;
    while at + 4 <= bytes.len() && (out.len() as u64) < count {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into()?) as usize;
        let body = bytes
            .get(at + 4..at + 4 + len)
            .ok_or("a payload runs past the file")?;
        out.push(body.to_vec());
        at += 4 + len;
    }
    Ok(out)
}

fn realistic_payloads(count: u64) -> Result<Vec<Vec<u8>>, BoxError> {
    (0..count)
        .map(|n| {
            Ok(realistic::payload(SEED, n, 512)
                .apply(builder(n))
                .build()?
                .payload()
                .to_vec())
        })
        .collect()
}

#[inline(never)]
fn measure(
    dict: Option<&[u8]>,
    level: i32,
    payloads: &[Vec<u8>],
) -> Result<(usize, usize), BoxError> {
    let prepared = dict.map(|d| zstd::dict::EncoderDictionary::copy(d, level));
    let mut compressor = match &prepared {
        Some(p) => zstd::bulk::Compressor::with_prepared_dictionary(p)?,
        None => zstd::bulk::Compressor::new(level)?,
    };
    let (mut raw, mut stored) = (0, 0);
    let mut out = Vec::with_capacity(4096);
    for payload in payloads {
        out.clear();
        compressor.compress_to_buffer(payload, &mut out)?;
        raw += payload.len();
        stored += out.len().min(payload.len());
    }
    Ok((raw, stored))
}
