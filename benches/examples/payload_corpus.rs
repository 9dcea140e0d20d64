//! Writes payloads of the benchmark corpora to a file, for comparing compressors outside the
//! engine (docs/performance.md, eleventh session):
//!
//! ```sh
//! cargo run --release -p trailmix-benches --example payload_corpus -- realistic 512 10000 OUT
//! cargo run --release -p trailmix-benches --example payload_corpus -- incompressible 512 10000 OUT
//! ```
//!
//! Each payload is the canonical payload the engine stores for that receipt, written as a
//! 4-byte little-endian length and the bytes.

use std::io::Write as _;

use trailmix_benches::query_data::SEED;
use trailmix_benches::query_trailmix::{Corpus, with_payload};
use trailmix_benches::realistic;
use trailmix_benches::rigs::BoxError;
use trailmix_db::receipt::{ActorType, Kind, Receipt, Timestamp};

fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [corpus, size, count, out] = args.as_slice() else {
        return Err("usage: payload_corpus realistic|incompressible SIZE COUNT OUT".into());
    };
    let (size, count) = (size.parse::<usize>()?, count.parse::<u64>()?);
    let mut file = std::io::BufWriter::new(std::fs::File::create(out)?);
    let corpus: Corpus = corpus.parse()?;
    for seq in 0..count {
        let builder = Receipt::builder("acme", format!("evt-{seq}"), Kind::LlmCall)
            .app_id("probe")
            .actor_type(ActorType::Agent)
            .event_time(Timestamp::from_unix_nanos(1_790_812_800_000_000_000));
        let random = trailmix_benches::data::bytes(size, seq);
        // The realistic corpus at the size asked (the loads use 512 bytes).
        let receipt = match corpus {
            Corpus::Realistic => realistic::payload(SEED, seq, size).apply(builder).build()?,
            Corpus::Incompressible => with_payload(builder, corpus, seq, &random).build()?,
        };
        let payload = receipt.payload();
        file.write_all(&u32::try_from(payload.len())?.to_le_bytes())?;
        file.write_all(payload)?;
    }
    file.flush()?;
    Ok(())
}
