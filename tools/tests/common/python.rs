//! A Python virtual environment for tests that run other projects' verifiers: created under
//! the target directory, keyed by the pinned package list, reused when complete, created
//! under a file lock so that parallel test binaries do not race. A test that cannot get
//! Python or a package fails and says what is missing.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::Digest as _;

/// The marker written once every package installed.
const COMPLETE_MARKER: &str = ".trailmix-complete";

/// The Python that creates venvs: `$TRAILMIX_TEST_PYTHON`, else `python3` from `PATH`.
fn base_python() -> String {
    std::env::var("TRAILMIX_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// The python binary of a venv holding `packages` (pinned requirement specifiers, for
/// example `aat-verify==0.1.0`), created on first use under `target/`.
///
/// # Panics
/// When Python 3 with `venv` is missing or pip cannot install a package (no network, no
/// such version): the message names what is missing.
pub fn venv_python(packages: &[&str]) -> PathBuf {
    let mut sorted: Vec<&str> = packages.to_vec();
    sorted.sort_unstable();
    let digest = sha2::Sha256::digest(sorted.join("\n").as_bytes());
    let key = digest[..8].iter().fold(String::new(), |mut key, b| {
        let _ = write!(key, "{b:02x}");
        key
    });
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("python-venvs");
    std::fs::create_dir_all(&root).expect("create the venv root under target/");
    let venv = root.join(&key);
    let lock = std::fs::File::create(root.join(format!("{key}.lock"))).expect("venv lock file");
    lock.lock().expect("lock the venv");
    let python = venv.join("bin").join("python");
    if !venv.join(COMPLETE_MARKER).exists() {
        create(&venv, &sorted);
    }
    lock.unlock().expect("unlock the venv");
    python
}

fn create(venv: &Path, packages: &[&str]) {
    if venv.exists() {
        // A venv left half-made by an interrupted run.
        std::fs::remove_dir_all(venv).expect("remove a partial venv");
    }
    let base = base_python();
    run(
        Command::new(&base).args(["-m", "venv"]).arg(venv),
        &format!(
            "creating a Python venv needs Python 3 with the venv module ({base}; on Debian: \
             apt-get install python3-venv, or set TRAILMIX_TEST_PYTHON)"
        ),
    );
    run(
        Command::new(venv.join("bin").join("python"))
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(packages),
        &format!(
            "pip could not install {} from PyPI (network or version missing?)",
            packages.join(" ")
        ),
    );
    std::fs::write(venv.join(COMPLETE_MARKER), packages.join("\n")).expect("venv marker");
}

fn run(command: &mut Command, what_is_missing: &str) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{what_is_missing}: {e}"));
    assert!(
        output.status.success(),
        "{what_is_missing}:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
