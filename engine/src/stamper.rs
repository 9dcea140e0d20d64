//! The store's own RFC 3161 timestamps ([`crate::TimestampPolicy::OnSeal`]): a background
//! thread that requests a token for each durable epoch seal that has none, off the writer's
//! path, retrying with backoff. It looks at the durable seals the writer publishes, so seals
//! made before an open, while the TSA was down, or by the writer's own limits are all found.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::options::TsaSettings;

/// The file under `timestamps/` where the timestamp thread leaves its latest failure for
/// other processes (`trailmix-db inspect`); removed by the next success. A diagnostic only:
/// written without a sync.
pub const LAST_ERROR_FILE: &str = "last-error.txt";
use crate::position::Epoch;
use crate::timestamp;

/// What the writer's timestamp thread has done since the store was opened.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TimestampStatus {
    /// Tokens requested and stored.
    pub tokens_stored: u64,
    /// Failed attempts (TSA unreachable or refusing, a bad response, a token not stored).
    pub failures: u64,
    /// The latest failure, naming the epoch; cleared by the next success.
    pub last_error: Option<String>,
    /// Durable seals still without a token at the last look.
    pub pending: u64,
}

/// The durable epoch seals, `(epoch, seal note)`, of the open store.
pub(crate) type DurableSeals = Box<dyn Fn() -> Vec<(Epoch, SealNote)> + Send>;
/// Reads a seal's note (from the log): deferred, since most seals already have their token.
pub(crate) type SealNote = Box<dyn FnOnce() -> crate::Result<String> + Send>;

/// The running thread; stopped and joined by [`Stamper::stop`].
pub(crate) struct Stamper {
    wake: Sender<Wake>,
    handle: Mutex<Option<JoinHandle<()>>>,
    status: Arc<Mutex<TimestampStatus>>,
}

#[derive(Debug, Clone, Copy)]
enum Wake {
    Look,
    Stop,
}

impl Stamper {
    /// Starts the thread for the store in `data_dir`.
    pub(crate) fn start(
        data_dir: PathBuf,
        settings: TsaSettings,
        seals: DurableSeals,
    ) -> std::io::Result<Stamper> {
        let (wake, woken) = crossbeam_channel::bounded(1);
        let status = Arc::new(Mutex::new(TimestampStatus::default()));
        let worker = Worker {
            data_dir,
            settings,
            seals,
            status: Arc::clone(&status),
            stamped: BTreeSet::new(),
        };
        let handle = std::thread::Builder::new()
            .name("trailmix-timestamps".into())
            .spawn(move || worker.run(&woken))?;
        Ok(Stamper {
            wake,
            handle: Mutex::new(Some(handle)),
            status,
        })
    }

    /// Asks the thread to look for new seals now (never blocks: a pending wake suffices).
    pub(crate) fn wake(&self) {
        let _ = self.wake.try_send(Wake::Look);
    }

    pub(crate) fn status(&self) -> TimestampStatus {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Stops the thread: it finishes a request in flight (bounded by the request timeout).
    pub(crate) fn stop(&self) {
        // The channel holds one message: a pending `Look` is replaced by waiting for room.
        let _ = self.wake.send_timeout(Wake::Stop, Duration::from_secs(1));
        let handle = self
            .handle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}

struct Worker {
    data_dir: PathBuf,
    settings: TsaSettings,
    seals: DurableSeals,
    status: Arc<Mutex<TimestampStatus>>,
    /// Epochs known to have a token (stored here, or found on disk).
    stamped: BTreeSet<u64>,
}

impl Worker {
    fn run(mut self, woken: &Receiver<Wake>) {
        let mut backoff = self.settings.retry_backoff_initial;
        // Set while backing off after a failure: until then, wakes are not acted on.
        let mut retry_at: Option<Instant> = None;
        let mut look = true;
        loop {
            if look {
                if self.stamp_pending() {
                    backoff = self.settings.retry_backoff_initial;
                    retry_at = None;
                } else {
                    retry_at = Some(Instant::now() + backoff);
                    backoff = (backoff * 2).min(self.settings.retry_backoff_max);
                }
            }
            let wait = retry_at.map_or(self.settings.poll_interval, |at| {
                at.saturating_duration_since(Instant::now())
            });
            look = match woken.recv_timeout(wait) {
                Ok(Wake::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                Ok(Wake::Look) => retry_at.is_none_or(|at| Instant::now() >= at),
                Err(RecvTimeoutError::Timeout) => true,
            };
        }
    }

    /// Requests tokens for the durable seals without one, in epoch order; `false` at the
    /// first failure (the rest wait for the retry).
    fn stamp_pending(&mut self) -> bool {
        let pending: Vec<(Epoch, SealNote)> = (self.seals)()
            .into_iter()
            .filter(|(epoch, _)| !self.stamped.contains(&epoch.0))
            .collect();
        let mut left = pending.len() as u64;
        self.update(|s| s.pending = left);
        for (epoch, note) in pending {
            match self.stamp(epoch, note) {
                Ok(stored) => {
                    self.stamped.insert(epoch.0);
                    left -= 1;
                    let had_error = self.status().last_error.is_some();
                    self.update(|s| {
                        s.pending = left;
                        s.tokens_stored += u64::from(stored);
                        s.last_error = None;
                    });
                    if had_error {
                        let _ = std::fs::remove_file(self.last_error_path());
                    }
                }
                Err(detail) => {
                    let error = format!("epoch {}: {detail}", epoch.0);
                    let unix = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs());
                    let path = self.last_error_path();
                    let _ = path
                        .parent()
                        .map(std::fs::create_dir_all)
                        .transpose()
                        .and_then(|_| std::fs::write(&path, format!("{unix} {error}\n")));
                    self.update(|s| {
                        s.failures += 1;
                        s.last_error = Some(error);
                    });
                    return false;
                }
            }
        }
        true
    }

    /// Stores a token for `epoch` unless one is there; `true` when it stored one.
    fn stamp(&self, epoch: Epoch, note: SealNote) -> Result<bool, String> {
        if timestamp::read_token(&self.data_dir, epoch)
            .map_err(|e| e.to_string())?
            .is_some()
        {
            return Ok(false);
        }
        let note = note().map_err(|e| format!("reading the seal: {e}"))?;
        let token = timestamp::request_token(
            &self.settings.tsa_url,
            &timestamp::seal_imprint(note.as_bytes()),
            self.settings.request_timeout,
        )
        .map_err(|e| e.to_string())?;
        timestamp::write_token(&self.data_dir, epoch, &token).map_err(|e| e.to_string())?;
        Ok(true)
    }

    fn status(&self) -> TimestampStatus {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn last_error_path(&self) -> PathBuf {
        self.data_dir
            .join(timestamp::TIMESTAMP_DIR)
            .join(LAST_ERROR_FILE)
    }

    fn update(&self, change: impl FnOnce(&mut TimestampStatus)) {
        change(&mut self.status.lock().unwrap_or_else(PoisonError::into_inner));
    }
}
