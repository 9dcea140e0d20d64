//! The object store behind an archive: S3 or the local file system, driven from blocking code
//! through a private tokio runtime.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder, Checksum, S3ConditionalPut};
use object_store::client::{
    HttpClient, HttpConnector, HttpRequest, HttpRequestBody, ReqwestConnector,
};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::signer::{HeaderName, HeaderValue, Method, SignedUrlOptions, Signer};
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
    RetryConfig,
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
        let (store, checksums): (Arc<dyn ObjectStore>, _) = match &self.backend {
            Backend::Local(path) => {
                std::fs::create_dir_all(path).map_err(|e| failed(e.to_string()))?;
                let local =
                    LocalFileSystem::new_with_prefix(path).map_err(|e| failed(e.to_string()))?;
                (Arc::new(local), None)
            }
            Backend::S3 { bucket, settings } => {
                let s3 = Arc::new(
                    s3_builder(bucket, settings)
                        .build()
                        .map_err(|e| failed(e.to_string()))?,
                );
                // As the builder decides it (settings first, then the environment), so that the
                // checksum HEADs reach the same endpoint as the puts.
                let endpoint = settings
                    .endpoint
                    .clone()
                    .or_else(|| std::env::var("AWS_ENDPOINT").ok())
                    .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok());
                let plain_http = endpoint.is_some_and(|e| e.starts_with("http://"))
                    || std::env::var("AWS_ALLOW_HTTP").is_ok_and(|v| v == "true");
                let http = ReqwestConnector::default()
                    .connect(&ClientOptions::new().with_allow_http(plain_http))
                    .map_err(|e| failed(e.to_string()))?;
                let store: Arc<dyn ObjectStore> = Arc::clone(&s3) as Arc<dyn ObjectStore>;
                (store, Some(ChecksumHead { signer: s3, http }))
            }
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| failed(format!("starting the I/O runtime: {e}")))?;
        Ok(Remote {
            store,
            checksums,
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

/// How [`Db::archive`](crate::Db::archive) confirms that each object it wrote (or found
/// present) is in the archive, whole, before it records the epochs as archived.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RemoteCheck {
    /// On S3, one `HEAD` per object with `x-amz-checksum-mode: ENABLED`: the object's current
    /// version must exist with the manifest's size and carry the manifest's SHA-256 as its
    /// stored `x-amz-checksum-sha256` — the checksum the server computed over the body and
    /// compared with ours when it accepted the upload (it refuses a mismatching body). An
    /// object whose server reports no SHA-256 checksum, and every object on the local file
    /// system (which keeps none), is read back as with [`RemoteCheck::FullReadBack`].
    #[default]
    Checksum,
    /// Every object is downloaded whole and its size and SHA-256 computed here.
    FullReadBack,
}

/// How the size and SHA-256 of an archived object were learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Learned {
    /// From the server's stored checksum (a `HEAD`).
    ServerChecksum,
    /// By downloading the object and hashing it here.
    ReadBack,
}

/// An S3 store's signer and an HTTP client for `HEAD` requests with checksum mode, which
/// `object_store` does not send itself.
struct ChecksumHead {
    signer: Arc<AmazonS3>,
    http: HttpClient,
}

/// What a checksum `HEAD` found: the object's size and its stored SHA-256, if any.
type Headed = (u64, Option<[u8; 32]>);

/// A connected archive.
pub(crate) struct Remote {
    store: Arc<dyn ObjectStore>,
    checksums: Option<ChecksumHead>,
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

    /// Creates `name` with `bytes` (whose size and SHA-256 are `expected`) unless it exists;
    /// an existing object must hold the same bytes (same size and SHA-256, learned as `check`
    /// says).
    pub(crate) fn put_create(
        &self,
        name: &str,
        bytes: Vec<u8>,
        expected: ObjectSum,
        check: RemoteCheck,
    ) -> Result<Created, ArchiveError> {
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
            ) => match self.remote_sum(name, check)?.map(|(sum, _)| sum) {
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

    /// The size and SHA-256 of `name` in the archive, and how they were learned: with
    /// [`RemoteCheck::Checksum`] on S3 from the checksum the server stored, else (or when it
    /// stored none) by reading the object back. `None` when it does not exist.
    pub(crate) fn remote_sum(
        &self,
        name: &str,
        check: RemoteCheck,
    ) -> Result<Option<(ObjectSum, Learned)>, ArchiveError> {
        if check == RemoteCheck::Checksum
            && let Some(head) = &self.checksums
        {
            match self.runtime.block_on(self.head_checksum(head, name))? {
                None => return Ok(None),
                Some((size, Some(sum))) => return Ok(Some(((size, sum), Learned::ServerChecksum))),
                Some((_, None)) => {}
            }
        }
        Ok(self.sum(name)?.map(|sum| (sum, Learned::ReadBack)))
    }

    /// A presigned `HEAD` of `name` with checksum mode on; `None` when the object (its current
    /// version) does not exist.
    async fn head_checksum(
        &self,
        head: &ChecksumHead,
        name: &str,
    ) -> Result<Option<Headed>, ArchiveError> {
        let path = self.path(name);
        let failed = |detail: String| ArchiveError::Remote {
            object: path.to_string(),
            detail,
        };
        let options = SignedUrlOptions::new().with_signed_header(
            HeaderName::from_static("x-amz-checksum-mode"),
            HeaderValue::from_static("ENABLED"),
        );
        let url = head
            .signer
            .signed_url_opts(Method::HEAD, &path, Duration::from_secs(600), &options)
            .await
            .map_err(|e| self.remote_error(name, &e))?;
        // object_store retries its own requests; this one goes around its client, so it
        // follows the same policy by hand: transport errors, 5xx and 429 are retried.
        let policy = retry_policy();
        let started = std::time::Instant::now();
        let mut backoff = policy.backoff.init_backoff;
        let mut retries = 0;
        loop {
            let mut request = HttpRequest::new(HttpRequestBody::empty());
            *request.method_mut() = Method::HEAD;
            parse_into(request.uri_mut(), url.as_str()).map_err(&failed)?;
            request.headers_mut().insert(
                HeaderName::from_static("x-amz-checksum-mode"),
                HeaderValue::from_static("ENABLED"),
            );
            let response = head.http.execute(request).await;
            let transient = match &response {
                Ok(r) => r.status().is_server_error() || r.status().as_u16() == 429,
                Err(_) => true,
            };
            if transient && retries < policy.max_retries && started.elapsed() < policy.retry_timeout
            {
                retries += 1;
                tokio::time::sleep(backoff).await;
                backoff = backoff
                    .mul_f64(policy.backoff.base)
                    .min(policy.backoff.max_backoff);
                continue;
            }
            let response = response.map_err(|e| failed(format!("HEAD: {e}")))?;
            return match response.status().as_u16() {
                404 => Ok(None),
                200 => parse_head(response.headers()).map(Some).map_err(failed),
                status => Err(failed(format!("HEAD: HTTP status {status}"))),
            };
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

/// Sets `slot` to `text` parsed (a URL into a request's URI).
fn parse_into<T: std::str::FromStr>(slot: &mut T, text: &str) -> Result<(), String>
where
    T::Err: std::fmt::Display,
{
    *slot = text
        .parse()
        .map_err(|e: T::Err| format!("URL {text}: {e}"))?;
    Ok(())
}

/// The size (`content-length`) and stored SHA-256 (`x-amz-checksum-sha256`, base64) of a
/// `HEAD` response. A checksum that is not one whole-object SHA-256 (a multipart upload's
/// composite `…-N`) counts as none.
fn parse_head(headers: &object_store::HeaderMap) -> Result<Headed, String> {
    let size = headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| "HEAD: no content-length".to_owned())?;
    let sum = headers
        .get("x-amz-checksum-sha256")
        .and_then(|v| BASE64.decode(v.as_bytes()).ok())
        .and_then(|raw| <[u8; 32]>::try_from(raw.as_slice()).ok());
    Ok((size, sum))
}

/// SHA-256 of `bytes`.
pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    crate::replay::hex(bytes)
}
