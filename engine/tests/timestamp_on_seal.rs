//! Guards `TimestampPolicy::OnSeal` against a local TSA (`openssl ts` on loopback): after a
//! seal a token appears beside the store and verifies; with the TSA down appends go on, the
//! failure is reported by `Db::timestamp_status`, and the token appears once the TSA is back
//! (retried with backoff) or, for a seal made while it was down, when the store is reopened.

mod common;

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use trailmix_db::timestamp::{read_ca_certificate, read_token, verify_token};
use trailmix_db::{Db, DbOptions, Epoch, TimestampPolicy, TimestampStatus, TsaSettings};

use common::receipt;

fn on_seal(url: &str) -> DbOptions {
    let mut settings = TsaSettings::new(url);
    settings.request_timeout = Duration::from_secs(5);
    settings.retry_backoff_initial = Duration::from_millis(50);
    settings.retry_backoff_max = Duration::from_millis(400);
    settings.poll_interval = Duration::from_millis(100);
    DbOptions::default().timestamp_policy(TimestampPolicy::OnSeal(settings))
}

/// Waits up to 30 s for `done`.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn has_token(dir: &Path, epoch: u64) -> bool {
    read_token(dir, Epoch(epoch)).expect("read").is_some()
}

/// The seal note of `epoch` (what its token must timestamp), from an inclusion proof.
fn seal_note(db: &Db, first: trailmix_db::wal::Seq) -> String {
    db.prove(first).expect("prove").checkpoint
}

/// The stored token of the epoch of `seq` timestamps its seal and chains to `ca`.
fn assert_token_verifies(
    db: &Db,
    dir: &Path,
    seq: trailmix_db::wal::Seq,
    ca: &trailmix_db::timestamp::Certificate,
) {
    let epoch = db.get(seq).expect("get").position.epoch;
    let token = read_token(dir, epoch).expect("read").expect("token");
    verify_token(&token, seal_note(db, seq).as_bytes(), ca).expect("it verifies");
}

fn status(db: &Db) -> TimestampStatus {
    db.timestamp_status().expect("OnSeal reports a status")
}

/// A TCP relay in front of the TSA that can be switched off (connections dropped at once).
struct Relay {
    url: String,
    up: Arc<AtomicBool>,
}

fn relay(tsa_url: &str) -> Relay {
    let target = tsa_url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/", listener.local_addr().expect("addr"));
    let up = Arc::new(AtomicBool::new(false));
    let switch = Arc::clone(&up);
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            if switch.load(Ordering::SeqCst) {
                std::thread::spawn({
                    let target = target.clone();
                    move || forward(client, &target)
                });
            }
        }
    });
    Relay { url, up }
}

fn forward(client: TcpStream, target: &str) {
    let Ok(server) = TcpStream::connect(target) else {
        return;
    };
    let (mut client_read, mut server_write) = (
        client.try_clone().expect("clone"),
        server.try_clone().expect("clone"),
    );
    let upstream = std::thread::spawn(move || {
        let mut buf = [0_u8; 8192];
        while let Ok(n) = client_read.read(&mut buf) {
            if n == 0 || server_write.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = server_write.shutdown(std::net::Shutdown::Write);
    });
    let (mut server_read, mut client_write) = (server, client);
    let _ = std::io::copy(&mut server_read, &mut client_write);
    let _ = upstream.join();
}

#[test]
fn a_seal_gets_its_token_in_the_background() {
    let tsa = common::tsa::start();
    let ca = read_ca_certificate(&tsa.ca_cert).expect("CA");
    let store = tempfile::tempdir().expect("store");
    let db = Db::open_with(store.path(), on_seal(&tsa.url)).expect("open");
    let first = db.append_and_wait(&receipt("acme", 0, 8)).expect("append");
    db.seal_epoch().expect("seal").expect("sealed");
    wait_for("the token of epoch 0", || has_token(store.path(), 0));
    assert_token_verifies(&db, store.path(), first.seq, &ca);
    wait_for("the status to count it", || status(&db).tokens_stored == 1);
    let s = status(&db);
    assert_eq!((s.failures, s.pending, s.last_error), (0, 0, None));
    db.close().expect("close");

    // Off by default: no thread, no status.
    let off = tempfile::tempdir().expect("store");
    let db = Db::open(off.path()).expect("open");
    assert_eq!(db.timestamp_status(), None);
    db.append_and_wait(&receipt("acme", 0, 8)).expect("append");
    db.seal_epoch().expect("seal");
    db.close().expect("close");
    assert!(!off.path().join("timestamps").exists());
}

#[test]
fn tsa_down_writes_go_on_and_the_token_comes_later() {
    let tsa = common::tsa::start();
    let ca = read_ca_certificate(&tsa.ca_cert).expect("CA");
    let relay = relay(&tsa.url);
    let store = tempfile::tempdir().expect("store");
    let db = Db::open_with(store.path(), on_seal(&relay.url)).expect("open");
    let first = db.append_and_wait(&receipt("acme", 0, 8)).expect("append");
    db.seal_epoch().expect("seal").expect("sealed");

    // Down: failures are reported and retried, appends are not held up.
    wait_for("two failed attempts", || status(&db).failures >= 2);
    let s = status(&db);
    assert!(
        s.last_error
            .as_deref()
            .is_some_and(|e| e.starts_with("epoch 0: ")),
        "{s:?}"
    );
    assert_eq!((s.tokens_stored, s.pending), (0, 1), "{s:?}");
    // Left for other processes (`inspect`), until a success clears it.
    let last_error = store
        .path()
        .join("timestamps")
        .join(trailmix_db::timestamp::LAST_ERROR_FILE);
    let text = std::fs::read_to_string(&last_error).expect("last-error.txt");
    assert!(text.contains(" epoch 0: "), "{text}");
    let started = Instant::now();
    for n in 1..20 {
        db.append_and_wait(&receipt("acme", n, 8))
            .expect("append while the TSA is down");
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "appends were held up"
    );
    assert!(!has_token(store.path(), 0));

    // Back: the retry stores the token.
    relay.up.store(true, Ordering::SeqCst);
    wait_for("the token of epoch 0 after the TSA is back", || {
        has_token(store.path(), 0)
    });
    assert_token_verifies(&db, store.path(), first.seq, &ca);
    wait_for("the status to clear", || status(&db).last_error.is_none());
    wait_for("last-error.txt to go", || !last_error.exists());

    // Down again for the next seal, closed before it is stamped: the reopened store (TSA
    // back) requests it.
    relay.up.store(false, Ordering::SeqCst);
    let second = db.append_and_wait(&receipt("acme", 50, 8)).expect("append");
    db.seal_epoch().expect("seal").expect("sealed");
    wait_for("a failure for epoch 1", || {
        status(&db)
            .last_error
            .is_some_and(|e| e.starts_with("epoch 1: "))
    });
    db.close().expect("close");
    assert!(!has_token(store.path(), 1));
    let db = Db::open_with(store.path(), on_seal(&tsa.url)).expect("reopen");
    wait_for("the token of epoch 1 after reopening", || {
        has_token(store.path(), 1)
    });
    assert_token_verifies(&db, store.path(), second.seq, &ca);
    db.close().expect("close");
}
