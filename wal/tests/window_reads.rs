//! Guards point reads over a log of many more segments than a reader keeps mapped: they return
//! the same records as a scan, copy windows instead of mapping a segment per read, still map
//! a segment that is read often, and report damage exactly as the mapped path does.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use trailmix_wal::sim::{Fault, FaultError, Op, SimDisk, SimStorage};
use trailmix_wal::{
    ChainHash, Error, OPEN_SEGMENTS_MAX, Record, RecordKind, SegmentNo, Seq, Wal, WalOptions,
    WalReader,
};

/// Segments written: four times what a reader keeps.
const SEGMENTS: usize = 4 * OPEN_SEGMENTS_MAX;
/// Records written: enough for more than [`SEGMENTS`] segments of 128 KiB.
const RECORDS: u64 = 16_000;
/// Random reads in the spread-out test.
const READS: u64 = 4000;

fn payload(seq: u64) -> Vec<u8> {
    let len = usize::try_from(200 + seq * 7919 % 900).expect("small");
    (0..len)
        .map(|i| u8::try_from((seq + i as u64 * 31) % 256).expect("byte"))
        .collect()
}

/// A closed log of more than [`SEGMENTS`] segments on a simulated disk, and all its records.
fn log() -> (SimDisk, Vec<Record>) {
    let disk = SimDisk::new(7);
    let options = WalOptions::default()
        .segment_bytes(32 * 4096)
        .record_bytes_max(2048);
    let mut wal = Wal::open_with(disk.storage(), options).expect("open");
    let kind = RecordKind::new(3).expect("kind");
    for seq in 0..RECORDS {
        wal.append(kind, &payload(seq), &ChainHash::ZERO)
            .expect("append");
        if seq % 64 == 63 {
            wal.flush().expect("flush");
        }
    }
    wal.close().expect("close");
    let reader = WalReader::open_with(disk.storage()).expect("reader");
    assert!(reader.segments().len() > SEGMENTS);
    let records = reader.read_from(Seq(0)).expect("scan");
    assert_eq!(records.len() as u64, RECORDS);
    (disk, records)
}

/// A reader whose every map slot a scan has taken (the last segments).
fn scanned_reader(disk: &SimDisk) -> WalReader<SimStorage> {
    let reader = WalReader::open_with(disk.storage()).expect("reader");
    reader.read_from(Seq(0)).expect("scan");
    reader
}

/// Segments mapped and copies made on `disk` so far.
fn maps_and_copies(disk: &SimDisk) -> (u64, u64) {
    (disk.ops_of(Op::Open), disk.ops_of(Op::ReadSegment))
}

/// A position hint for `seq` as the engine's directory gives one: a record up to three before
/// it, in its segment.
fn hint(records: &[Record], seq: usize, rng: &mut SmallRng) -> (Seq, trailmix_wal::Position) {
    let back = rng.random_range(0..=3usize).min(seq);
    let segment = records[seq].position.segment;
    let from = (seq - back..=seq)
        .find(|&i| records[i].position.segment == segment)
        .expect("seq itself is in its segment");
    (records[from].seq, records[from].position)
}

fn read(reader: &WalReader<SimStorage>, records: &[Record], seq: usize, rng: &mut SmallRng) {
    let expected = &records[seq];
    let hint = Some(hint(records, seq, rng));
    let record = reader
        .visit_with_hint(expected.seq, hint, |r| r.to_owned_record())
        .expect("read");
    assert_eq!(&record, expected, "seq {seq}");
    let unchecked = reader
        .visit_unchecked_with_hint(expected.seq, hint, |r| r.to_owned_record())
        .expect("walk");
    assert_eq!(unchecked.as_ref(), Some(expected), "seq {seq}, unchecked");
}

#[test]
fn random_point_reads_copy_windows_instead_of_mapping_segments() {
    let (disk, records) = log();
    let reader = WalReader::open_with(disk.storage()).expect("reader");
    let mut rng = SmallRng::seed_from_u64(1);
    let (maps_before, copies_before) = maps_and_copies(&disk);
    for _ in 0..READS {
        let seq = rng.random_range(0..records.len());
        read(&reader, &records, seq, &mut rng);
    }
    let maps = disk.ops_of(Op::Open) - maps_before;
    let copies = disk.ops_of(Op::ReadSegment) - copies_before;
    println!("{READS} random reads over {SEGMENTS}+ segments: {maps} maps, {copies} copies");
    assert!(reader.mapped_segments() <= OPEN_SEGMENTS_MAX);
    // Mapping on every miss maps about three reads in four (48 of 64 segments not kept).
    assert!(maps < READS / 20, "{maps} maps for {READS} reads");
    // Each read reads its record twice, the second time from the first one's copy.
    assert!(copies > READS / 2, "{copies} copies for {READS} reads");
}

/// Reads that come back to a segment (a time-range page, a session trace) map it at the
/// second copy; after that they read from the map.
#[test]
fn a_segment_read_again_earns_a_map() {
    let (disk, records) = log();
    let reader = scanned_reader(&disk);
    let mut rng = SmallRng::seed_from_u64(2);
    let page: Vec<usize> = (0..records.len())
        .filter(|&i| records[i].position.segment == SegmentNo(1) && i % 9 == 0)
        .collect();
    let (maps_before, copies_before) = maps_and_copies(&disk);
    for &seq in &page {
        read(&reader, &records, seq, &mut rng);
    }
    assert_eq!(disk.ops_of(Op::Open) - maps_before, 1, "mapped once");
    let copies = disk.ops_of(Op::ReadSegment) - copies_before;
    assert!(copies <= 2, "{copies} copies for a page of {}", page.len());
}

/// The entry after a receipt, walked from the receipt (the engine's link check), is read from
/// the receipt's copy.
#[test]
fn a_neighbour_is_read_from_the_same_copy() {
    let (disk, records) = log();
    let reader = scanned_reader(&disk);
    let mut rng = SmallRng::seed_from_u64(4);
    let (maps_before, copies_before) = maps_and_copies(&disk);
    let mut pairs = 0;
    for seq in (100..records.len() - 1).step_by(record_stride(&records)) {
        if records[seq].position.segment != records[seq + 1].position.segment
            || records[seq].position.segment.0 >= (SEGMENTS - OPEN_SEGMENTS_MAX) as u64
        {
            continue;
        }
        read(&reader, &records, seq, &mut rng);
        let copies = disk.ops_of(Op::ReadSegment);
        // As the engine checks a receipt's link: the next entry, walked from the receipt.
        let from = Some((records[seq].seq, records[seq].position));
        let next = reader
            .visit_unchecked_with_hint(records[seq + 1].seq, from, |r| r.to_owned_record())
            .expect("walk");
        assert_eq!(next.as_ref(), Some(&records[seq + 1]));
        assert_eq!(
            disk.ops_of(Op::ReadSegment),
            copies,
            "seq {} from the copy",
            seq + 1
        );
        pairs += 1;
    }
    assert!(pairs > 10, "{pairs} pairs read");
    assert_eq!(disk.ops_of(Op::Open), maps_before, "nothing mapped");
    assert!(disk.ops_of(Op::ReadSegment) > copies_before);
}

/// About a segment's worth of records: consecutive pairs land in different segments.
fn record_stride(records: &[Record]) -> usize {
    records.len() / (SEGMENTS + 1)
}

#[test]
fn damage_in_a_segment_not_mapped_is_reported_as_by_the_map() {
    let (disk, records) = log();
    // A scan leaves the last segments mapped; segment 2 is not.
    let reader = scanned_reader(&disk);
    let target = records
        .iter()
        .find(|r| r.position.segment == SegmentNo(2) && r.seq.0 % 4 == 2)
        .expect("a record in segment 2");
    let name = format!(
        "{:020}.seg",
        records
            .iter()
            .find(|r| r.position.segment == SegmentNo(2))
            .expect("first")
            .seq
            .0
    );
    let payload_at = usize::try_from(target.position.offset + 32).expect("fits");
    let flipped = [target.payload[0] ^ 0x40];
    assert!(disk.corrupt(&name, payload_at, &flipped), "{name}");
    let copies_before = disk.ops_of(Op::ReadSegment);
    let found = reader.visit_with_hint(target.seq, Some((target.seq, target.position)), |_| ());
    assert!(
        disk.ops_of(Op::ReadSegment) > copies_before,
        "the window path was tried first"
    );
    match found {
        Err(Error::Corrupted { segment, .. }) => assert_eq!(segment, SegmentNo(2)),
        other => panic!("expected Corrupted in segment 2, got {other:?}"),
    }
    // Unchecked, the frame's header still leads to it.
    let unchecked = reader
        .visit_unchecked_with_hint(target.seq, Some((target.seq, target.position)), |r| {
            r.payload[0]
        })
        .expect("walk");
    assert_eq!(unchecked, Some(flipped[0]));
}

#[test]
fn failed_copies_fall_back_to_the_map() {
    let (disk, records) = log();
    let reader = WalReader::open_with(disk.storage()).expect("reader");
    disk.inject(Fault {
        at_op: disk.ops(),
        only: Some(Op::ReadSegment),
        error: FaultError::Eio,
        persistent: true,
    });
    let mut rng = SmallRng::seed_from_u64(3);
    for _ in 0..500 {
        let seq = rng.random_range(0..records.len());
        read(&reader, &records, seq, &mut rng);
    }
    assert!(disk.ops_of(Op::ReadSegment) > 0, "copies were tried");
}

/// Announced reads map the segments that hold several of them, and only those; the reads then
/// copy nothing there.
#[test]
fn announced_reads_map_segments_read_more_than_once() {
    let (disk, records) = log();
    let reader = scanned_reader(&disk);
    let records_ref = &records;
    let in_segment = |segment: u64| {
        (0..records_ref.len())
            .filter(move |&i| records_ref[i].position.segment == SegmentNo(segment))
    };
    let mut page: Vec<usize> = in_segment(1).step_by(7).collect();
    page.extend(in_segment(2).take(1));
    page.extend(in_segment(3).take(1));
    let seqs: Vec<Seq> = page.iter().map(|&i| records[i].seq).collect();
    let maps_before = disk.ops_of(Op::Open);
    reader.map_for_reads(&seqs).expect("map");
    assert_eq!(disk.ops_of(Op::Open) - maps_before, 1, "segment 1 only");
    let copies_before = disk.ops_of(Op::ReadSegment);
    let mut rng = SmallRng::seed_from_u64(5);
    for &seq in &page {
        read(&reader, &records, seq, &mut rng);
    }
    assert_eq!(
        disk.ops_of(Op::Open) - maps_before,
        1,
        "nothing more mapped"
    );
    assert_eq!(
        disk.ops_of(Op::ReadSegment) - copies_before,
        2,
        "one copy each for segments 2 and 3"
    );
}

/// The last segment, whose unflushed frames a later writer may rewrite, is never copied: its
/// reads go through a map even when every slot is taken by others.
#[test]
fn the_last_segment_is_read_through_a_map() {
    let (disk, records) = log();
    let reader = WalReader::open_with(disk.storage()).expect("reader");
    let last = reader.segments().last().expect("segments").segment_no();
    // Fill every map slot with early segments.
    for segment in 0..OPEN_SEGMENTS_MAX as u64 {
        let seqs: Vec<Seq> = records
            .iter()
            .filter(|r| r.position.segment == SegmentNo(segment))
            .map(|r| r.seq)
            .take(2)
            .collect();
        reader.map_for_reads(&seqs).expect("map");
    }
    assert_eq!(reader.mapped_segments(), OPEN_SEGMENTS_MAX);
    let tail = records
        .iter()
        .rposition(|r| r.position.segment == last)
        .expect("a record in the last segment");
    let (maps_before, copies_before) = maps_and_copies(&disk);
    read(&reader, &records, tail, &mut SmallRng::seed_from_u64(6));
    assert_eq!(disk.ops_of(Op::Open) - maps_before, 1, "mapped");
    assert_eq!(disk.ops_of(Op::ReadSegment), copies_before, "not copied");
}
