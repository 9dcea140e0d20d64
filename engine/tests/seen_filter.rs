//! Guards the event filter (`SeenEvents`, a cache-line-blocked Bloom filter): no false
//! negatives, a false-positive rate near its design point at a full block, and a byte round
//! trip that keeps every answer.

use trailmix_db::seen::{EVENTS_PER_BLOCK, SeenEvents};

fn event(n: usize) -> String {
    format!("evt-{n:08}")
}

#[test]
fn a_full_block_has_no_false_negatives_and_about_one_percent_false_positives() {
    let filter = SeenEvents::with_key([7; 32]);
    for n in 0..EVENTS_PER_BLOCK {
        filter.insert("acme", &event(n));
    }
    for n in (0..EVENTS_PER_BLOCK).step_by(7) {
        assert!(filter.may_contain("acme", &event(n)), "event {n} lost");
    }
    let asked = 200_000;
    let false_positives = (EVENTS_PER_BLOCK..EVENTS_PER_BLOCK + asked)
        .filter(|&n| filter.may_contain("acme", &event(n)))
        .count();
    // 10 bits per event, 8 probes in one 512-bit line: about 1.0% at a full block (a classic
    // Bloom filter with 7 probes spread over the block: 0.8%). Each false positive costs an
    // index lookup, so a regression here is a regression of ingest.
    #[allow(clippy::cast_precision_loss, reason = "small counts")]
    let rate = false_positives as f64 / asked as f64;
    println!("false positives at a full block: {false_positives} of {asked} ({rate:.4})");
    assert!(rate < 0.0125, "false-positive rate {rate}");
    // The other tenant's ids are other events.
    let other = (0..asked)
        .filter(|&n| filter.may_contain("globex", &event(n)))
        .count();
    assert!(
        other < asked / 80,
        "{other} of {asked} hits for another tenant"
    );
}

#[test]
fn events_past_one_block_go_on_and_the_bytes_round_trip() {
    let filter = SeenEvents::with_key([9; 32]);
    let events = EVENTS_PER_BLOCK + 1000;
    for n in 0..events {
        filter.insert("t", &event(n));
    }
    let bytes = filter.to_bytes();
    let again = SeenEvents::from_bytes(&bytes).expect("decodes");
    assert_eq!(again.to_bytes(), bytes);
    for n in (0..events).step_by(13).chain(events - 1000..events) {
        assert!(again.may_contain("t", &event(n)), "event {n} lost");
    }
}
