//! A local RFC 3161 time-stamping authority for tests: a CA, a TSA certificate under it
//! (extendedKeyUsage critical timeStamping) and `openssl ts -reply` behind a tiny HTTP
//! listener on 127.0.0.1. Needs the `openssl` command (OpenSSL 3); fails the test, saying so,
//! when it is missing.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

/// A running local TSA. The listener thread lives as long as the test process.
pub struct Tsa {
    /// `http://127.0.0.1:PORT/`.
    pub url: String,
    /// The CA certificate (PEM) the TSA certificate is issued under.
    pub ca_cert: PathBuf,
    /// A CA certificate (PEM) that did not issue the TSA certificate.
    pub other_ca_cert: PathBuf,
    /// Scratch directory of keys, certificates and requests (held so that it lives as long as
    /// the TSA; not read).
    #[allow(dead_code, reason = "held for its lifetime only")]
    pub dir: tempfile::TempDir,
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "the TSA tests need the `openssl` command (OpenSSL 3; Debian package `openssl`): {e}"
            )
        });
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn self_signed_ca(dir: &Path, name: &str) -> PathBuf {
    let (key, cert) = (format!("{name}.key"), format!("{name}.crt"));
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &cert,
            "-days",
            "3650",
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ],
    );
    dir.join(cert)
}

const TS_CONFIG: &str = "\
[ tsa ]
default_tsa = tsa_config

[ tsa_config ]
dir = .
serial = ./tsaserial
crypto_device = builtin
signer_cert = ./tsa.crt
signer_key = ./tsa.key
signer_digest = sha256
default_policy = 1.2.3.4.1
digests = sha256
accuracy = secs:1
ordering = no
tsa_name = no
ess_cert_id_chain = no
ess_cert_id_alg = sha256
";

/// Makes the CA, the TSA certificate and the `ts` config, and starts the HTTP listener.
pub fn start() -> Tsa {
    let dir = tempfile::tempdir().expect("tsa dir");
    let root = dir.path();
    let ca_cert = self_signed_ca(root, "test-ca");
    let other_ca_cert = self_signed_ca(root, "other-ca");
    openssl(
        root,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "tsa.key",
            "-out",
            "tsa.csr",
            "-subj",
            "/CN=test-tsa",
        ],
    );
    std::fs::write(
        root.join("tsa.ext"),
        "extendedKeyUsage=critical,timeStamping\nkeyUsage=critical,digitalSignature\nbasicConstraints=CA:FALSE\n",
    )
    .expect("ext file");
    openssl(
        root,
        &[
            "x509",
            "-req",
            "-in",
            "tsa.csr",
            "-CA",
            "test-ca.crt",
            "-CAkey",
            "test-ca.key",
            "-set_serial",
            "2",
            "-days",
            "365",
            "-extfile",
            "tsa.ext",
            "-out",
            "tsa.crt",
        ],
    );
    std::fs::write(root.join("tsaserial"), "01\n").expect("serial");
    std::fs::write(root.join("ts.cnf"), TS_CONFIG).expect("ts config");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/", listener.local_addr().expect("addr"));
    let serve_dir = root.to_path_buf();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            serve(stream, &serve_dir);
        }
    });
    Tsa {
        url,
        ca_cert,
        other_ca_cert,
        dir,
    }
}

/// Answers one HTTP POST with `openssl ts -reply`.
fn serve(mut stream: TcpStream, dir: &Path) {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut length = 0_usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let (query, reply) = (format!("query-{n}.tsq"), format!("reply-{n}.tsr"));
    std::fs::write(dir.join(&query), &body).expect("query file");
    let status = Command::new("openssl")
        .args([
            "ts",
            "-reply",
            "-config",
            "ts.cnf",
            "-queryfile",
            &query,
            "-out",
            &reply,
        ])
        .current_dir(dir)
        .output()
        .expect("openssl ts");
    let (code, answer) = if status.status.success() {
        ("200 OK", std::fs::read(dir.join(&reply)).expect("reply"))
    } else {
        ("500 Internal Server Error", status.stderr)
    };
    let head = format!(
        "HTTP/1.1 {code}\r\nContent-Type: application/timestamp-reply\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        answer.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&answer);
}
