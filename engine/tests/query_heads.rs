//! Guards the header-only query mode (`Db::query_heads`, its tenant-handle and read-only
//! forms): it returns exactly the positions and headers a full `Db::query` returns, page by
//! page through cursors (clear, encrypted and shredded payloads alike). That it refuses
//! changed header and payload bytes as full reads do is guarded in `query_tamper.rs`.

mod common;

use common::event_id;
use tempfile::TempDir;
use trailmix_db::query::Query;
use trailmix_db::receipt::{ActorType, Kind, Receipt, Timestamp};
use trailmix_db::wal::Seq;
use trailmix_db::{
    Db, DbOptions, Freshness, PayloadEncryption, PayloadState, QueryPage, ReadOnlyStore,
    ReceiptHead,
};

const TENANTS: [&str; 2] = ["acme", "globex"];
const RECEIPTS: u64 = 40;

/// Receipt `n`: tenants, models, sessions and subjects interleaved so that filters select
/// scattered subsets.
fn receipt(n: u64) -> Receipt {
    let tenant = TENANTS[usize::try_from(n % 2).expect("small")];
    Receipt::builder(tenant, event_id(n), Kind::LlmCall)
        .app_id("claims")
        .actor_type(ActorType::Agent)
        .session_id(format!("s{}", n % 3))
        .subject_id(format!("subject-{}", n % 4))
        .event_time(Timestamp::from_unix_nanos(
            1_700_000_000_000_000_000 + i64::try_from(n).expect("fits") * 1_000,
        ))
        .model_name(if n.is_multiple_of(5) {
            "gpt-4.1"
        } else {
            "claude"
        })
        .input(serde_json::json!({ "prompt": format!("claim {n}") }))
        .build()
        .expect("valid receipt")
}

fn options(encryption: PayloadEncryption) -> DbOptions {
    DbOptions::default().payload_encryption(encryption)
}

const ENCRYPTIONS: [PayloadEncryption; 2] = [PayloadEncryption::Off, PayloadEncryption::PerSubject];

/// A closed store of [`RECEIPTS`] receipts, all indexed; with encryption, one subject of
/// `acme` is shredded.
fn store(encryption: PayloadEncryption) -> (TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("store");
    let db = Db::open_with(&data, options(encryption)).expect("open");
    let tickets: Vec<_> = (0..RECEIPTS)
        .map(|n| db.append(&receipt(n)).expect("append"))
        .collect();
    for ticket in tickets {
        ticket.wait().expect("durable");
    }
    if encryption != PayloadEncryption::Off {
        db.shred("acme", "subject-2", "request-1").expect("shred");
    }
    db.query_text("tenant=acme", Freshness::Durable)
        .expect("index caught up");
    db.close().expect("close");
    (tmp, data)
}

/// What a header-only result must equal, taken from a full read.
fn head_of(receipt: &trailmix_db::StoredReceipt) -> (Seq, trailmix_db::ReceiptPosition, String) {
    (
        receipt.position.seq,
        receipt.position,
        format!("{:?}", receipt.header),
    )
}

fn heads(page: &QueryPage<ReceiptHead>) -> Vec<(Seq, trailmix_db::ReceiptPosition, String)> {
    page.receipts
        .iter()
        .map(|h| (h.position.seq, h.position, format!("{:?}", h.header)))
        .collect()
}

/// Pages through `text` (limit 3) with both modes, comparing every page and cursor.
fn assert_same_pages(db: &Db, text: &str) {
    let mut query = Query::parse(text).expect("filter");
    query.limit = 3;
    let mut pages = 0;
    loop {
        let full = db.query(&query, Freshness::Indexed).expect("full page");
        let head = db
            .query_heads(&query, Freshness::Indexed)
            .expect("heads page");
        assert_eq!(
            heads(&head),
            full.receipts.iter().map(head_of).collect::<Vec<_>>(),
            "{text}: page {pages}"
        );
        for (h, r) in head.receipts.iter().zip(&full.receipts) {
            assert_eq!(
                h.payload_encrypted,
                r.payload_state != PayloadState::Clear,
                "{text}: seq {:?}",
                r.position.seq
            );
            assert!(h.payload_bytes > 0, "{text}: seq {:?}", r.position.seq);
        }
        assert_eq!(head.next_cursor, full.next_cursor, "{text}: page {pages}");
        assert_eq!(head.watermark, full.watermark);
        assert_eq!(head.candidates_rejected, full.candidates_rejected);
        pages += 1;
        match full.next_cursor {
            Some(cursor) => {
                query.cursor = Some(trailmix_db::query::Cursor::decode(&cursor).expect("cursor"));
            }
            None => break,
        }
    }
    assert!(pages > 1, "{text}: the filter spans several pages");
}

#[test]
fn header_only_pages_equal_full_pages() {
    for encryption in ENCRYPTIONS {
        let (_tmp, data) = store(encryption);
        let db = Db::open_with(&data, options(encryption)).expect("open");
        for text in [
            "tenant=acme",
            "tenant=globex model=claude",
            "tenant=acme session=s1",
            "tenant=acme order=-time",
            "model=claude",
        ] {
            assert_same_pages(&db, text);
        }
        if encryption != PayloadEncryption::Off {
            let full = db
                .query_text("tenant=acme", Freshness::Indexed)
                .expect("full");
            assert!(
                full.receipts
                    .iter()
                    .any(|r| matches!(r.payload_state, PayloadState::Shredded { .. })),
                "the store holds shredded receipts"
            );
        }
        // The tenant handle and a read-only opener answer the same.
        let query = Query::parse("tenant=acme").expect("filter");
        let full = db.query(&query, Freshness::Indexed).expect("full");
        let scoped = db
            .tenant("acme")
            .query_heads(
                &Query::parse("model=claude").expect("filter"),
                Freshness::Indexed,
            )
            .expect("tenant heads");
        assert!(!scoped.receipts.is_empty());
        assert!(
            scoped
                .receipts
                .iter()
                .all(|h| h.header.tenant_id() == "acme")
        );
        db.close().expect("close");
        let reader = ReadOnlyStore::open(&data).expect("read-only open");
        let read_only = reader.query_heads(&query).expect("read-only heads");
        assert_eq!(
            heads(&read_only),
            full.receipts.iter().map(head_of).collect::<Vec<_>>()
        );
    }
}
