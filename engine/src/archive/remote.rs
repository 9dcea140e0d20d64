//! The object store behind an archive: S3 or the local file system, driven from blocking code
//! through a private tokio runtime.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use object_store::aws::{AmazonS3Builder, Checksum, S3ConditionalPut};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{
    BackoffConfig, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, RetryConfig,
};
use sha2::{Digest as _, Sha256};

use super::ArchiveError;

/// S3 connection settings beyond the bucket and prefix of the URL. Unset fields fall back to
/// the standard `AWS_*` environment variables (`AWS_ENDPOINT`, `AWS_REGION`,
/// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, ...).
#[derive(Debug, Clone, Default)]
pub struct S3Settings {
    /// The endpoint URL (`http://127.0.0.1:8333` for a local server); default: AWS.
    pub endpoint: Option<String>,
    /// The region; default `us-east-1` when neither this nor the environment names one.
    pub region: Option<String>,
    /// The access key id.
    pub access_key_id: Option<String>,
    /// The secret access key.
    pub secret_access_key: Option<String>,
}

/// Where an archive lives: a parsed `s3://bucket[/prefix]` or `file:///path` URL.
#[derive(Debug, Clone)]
pub struct ArchiveTarget {
    url: String,
    backend: Backend,
    prefix: String,
}

#[derive(Debug, Clone)]
enum Backend {
    Local(PathBuf),
    S3 {
        bucket: String,
        settings: S3Settings,
    },
}

impl ArchiveTarget {
    /// Parses `s3://bucket[/prefix]` (with `settings`) or `file:///absolute/path`.
    ///
    /// # Errors
    /// [`ArchiveError::BadUrl`] for any other form.
    pub fn parse(url: &str, settings: &S3Settings) -> Result<ArchiveTarget, ArchiveError> {
        let bad = |reason: &str| ArchiveError::BadUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        if let Some(path) = url.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(bad("a file URL needs an absolute path (file:///...)"));
            }
            return Ok(ArchiveTarget {
                url: url.to_owned(),
                backend: Backend::Local(PathBuf::from(path)),
                prefix: String::new(),
            });
        }
        let Some(rest) = url.strip_prefix("s3://") else {
            return Err(bad("expected s3://bucket[/prefix] or file:///path"));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(bad("the bucket name is empty"));
        }
        Ok(ArchiveTarget {
            url: url.to_owned(),
            backend: Backend::S3 {
                bucket: bucket.to_owned(),
                settings: settings.clone(),
            },
            prefix: prefix.trim_matches('/').to_owned(),
        })
    }

    /// The URL this target was parsed from.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Connects (no request is sent yet).
    pub(crate) fn connect(&self) -> Result<Remote, ArchiveError> {
        let failed = |detail: String| ArchiveError::Remote {
            object: self.url.clone(),
            detail,
        };
        let store: Arc<dyn ObjectStore> = match &self.backend {
            Backend::Local(path) => {
                std::fs::create_dir_all(path).map_err(|e| failed(e.to_string()))?;
                Arc::new(LocalFileSystem::new_with_prefix(path).map_err(|e| failed(e.to_string()))?)
            }
            Backend::S3 { bucket, settings } => Arc::new(
                s3_builder(bucket, settings)
                    .build()
                    .map_err(|e| failed(e.to_string()))?,
            ),
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| failed(format!("starting the I/O runtime: {e}")))?;
        Ok(Remote {
            store,
            runtime,
            prefix: self.prefix.clone(),
        })
    }
}

/// The retry policy: transient failures (timeouts, 5xx, throttling) are retried with
/// exponential backoff from 100 ms, doubling, capped at 5 s, up to 8 times or 2 minutes.
fn retry_policy() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            base: 2.0,
        },
        max_retries: 8,
        retry_timeout: Duration::from_secs(120),
    }
}

fn s3_builder(bucket: &str, settings: &S3Settings) -> AmazonS3Builder {
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        // The server checks each upload against its SHA-256 (`x-amz-checksum-sha256`); Object
        // Lock buckets require an integrity header on every put.
        .with_checksum_algorithm(Checksum::SHA256)
        .with_conditional_put(S3ConditionalPut::ETagMatch)
        .with_retry(retry_policy());
    if let Some(endpoint) = &settings.endpoint {
        builder = builder
            .with_endpoint(endpoint)
            .with_allow_http(endpoint.starts_with("http://"));
    }
    let region = settings
        .region
        .clone()
        .or_else(|| std::env::var("AWS_REGION").ok())
        .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
        .unwrap_or_else(|| "us-east-1".to_owned());
    builder = builder.with_region(region);
    if let Some(id) = &settings.access_key_id {
        builder = builder.with_access_key_id(id);
    }
    if let Some(secret) = &settings.secret_access_key {
        builder = builder.with_secret_access_key(secret);
    }
    builder
}

/// Whether a conditional create wrote the object or found it already there, identical.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Created {
    /// Written by this call.
    Written,
    /// Already present with the same SHA-256.
    Present,
}

/// Size and SHA-256 of an object as read back.
pub(crate) type ObjectSum = (u64, [u8; 32]);

/// A connected archive.
pub(crate) struct Remote {
    store: Arc<dyn ObjectStore>,
    runtime: tokio::runtime::Runtime,
    prefix: String,
}

impl Remote {
    /// The full object path of `name` (relative to the prefix).
    pub(crate) fn path(&self, name: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(name)
        } else {
            ObjectPath::from(format!("{}/{name}", self.prefix))
        }
    }

    fn remote_error(&self, name: &str, err: &object_store::Error) -> ArchiveError {
        ArchiveError::Remote {
            object: self.path(name).to_string(),
            detail: err.to_string(),
        }
    }

    /// Creates `name` with `bytes` unless it exists; an existing object must hold the same
    /// bytes (same size and SHA-256).
    pub(crate) fn put_create(&self, name: &str, bytes: Vec<u8>) -> Result<Created, ArchiveError> {
        let expected: ObjectSum = (bytes.len() as u64, sha256(&bytes));
        let path = self.path(name);
        let options = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        let put =
            self.runtime
                .block_on(self.store.put_opts(&path, PutPayload::from(bytes), options));
        match put {
            Ok(_) => Ok(Created::Written),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => match self.sum(name)? {
                Some(found) if found == expected => Ok(Created::Present),
                found => Err(ArchiveError::Conflict {
                    object: path.to_string(),
                    found: found.map_or_else(|| "none".into(), |(_, sum)| hex(&sum)),
                    expected: hex(&expected.1),
                }),
            },
            Err(err) => Err(self.remote_error(name, &err)),
        }
    }

    /// Streams `name` and returns its size and SHA-256; `None` when it does not exist.
    pub(crate) fn sum(&self, name: &str) -> Result<Option<ObjectSum>, ArchiveError> {
        let mut hasher = Sha256::new();
        let bytes = self.stream(name, |chunk| {
            hasher.update(chunk);
            Ok(())
        })?;
        Ok(bytes.map(|n| (n, hasher.finalize().into())))
    }

    /// Reads a small object whole (manifests, seals); `None` when it does not exist. Objects
    /// over `bytes_max` are refused.
    pub(crate) fn get_small(
        &self,
        name: &str,
        bytes_max: u64,
    ) -> Result<Option<Vec<u8>>, ArchiveError> {
        let mut out = Vec::new();
        let found = self.stream(name, |chunk| {
            if (out.len() + chunk.len()) as u64 > bytes_max {
                return Err(format!("larger than {bytes_max} bytes"));
            }
            out.extend_from_slice(chunk);
            Ok(())
        })?;
        Ok(found.map(|_| out))
    }

    /// Streams `name` into `sink` chunk by chunk and returns its SHA-256 and size; `None`
    /// when it does not exist.
    pub(crate) fn copy_to(
        &self,
        name: &str,
        sink: &mut impl Write,
    ) -> Result<Option<ObjectSum>, ArchiveError> {
        let mut hasher = Sha256::new();
        let found = self.stream(name, |chunk| {
            hasher.update(chunk);
            sink.write_all(chunk).map_err(|e| e.to_string())
        })?;
        Ok(found.map(|n| (n, hasher.finalize().into())))
    }

    /// Streams an object through `visit`; its size, or `None` when it does not exist.
    fn stream(
        &self,
        name: &str,
        mut visit: impl FnMut(&[u8]) -> Result<(), String>,
    ) -> Result<Option<u64>, ArchiveError> {
        let path = self.path(name);
        let store = Arc::clone(&self.store);
        self.runtime.block_on(async {
            let result = match store.get(&path).await {
                Ok(result) => result,
                Err(object_store::Error::NotFound { .. }) => return Ok(None),
                Err(err) => return Err(self.remote_error(name, &err)),
            };
            let mut stream = result.into_stream();
            let mut total = 0u64;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| self.remote_error(name, &e))?;
                total += chunk.len() as u64;
                visit(&chunk).map_err(|detail| ArchiveError::Remote {
                    object: path.to_string(),
                    detail,
                })?;
            }
            Ok(Some(total))
        })
    }

    /// The names of the "directories" directly under the prefix.
    pub(crate) fn list_dirs(&self) -> Result<Vec<String>, ArchiveError> {
        let prefix = (!self.prefix.is_empty()).then(|| ObjectPath::from(self.prefix.as_str()));
        let listed = self
            .runtime
            .block_on(self.store.list_with_delimiter(prefix.as_ref()))
            .map_err(|e| self.remote_error("", &e))?;
        Ok(listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_owned))
            .collect())
    }
}

/// SHA-256 of `bytes`.
pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    crate::replay::hex(bytes)
}
