//! A Python virtual environment with pinned `PyPI` packages, for tests that run the Python
//! audit-trail libraries themselves.
//!
//! The venv lives under the target directory, one per package list (the directory name is a
//! hash of the list), and is reused once complete. A file lock serialises its creation, so
//! test binaries running in parallel neither race nor install twice. When Python, its `venv`
//! module or the packages cannot be had, the test fails and says what is missing: it never
//! passes silently.

#![allow(dead_code, reason = "each test file uses a part of these")]

use std::collections::hash_map::DefaultHasher;
use std::fs::{self, File};
use std::hash::{Hash as _, Hasher as _};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Marks a venv whose packages were all installed.
const COMPLETE_MARKER: &str = "trailmix-venv-complete";

/// The Python binary of a venv holding exactly `packages` (pinned pip requirements such as
/// `"llm-audit-trail==0.1.0"`), created on first use.
///
/// # Panics
/// When `python3` with its `venv` module is not installed or pip cannot install the packages
/// (no access to `PyPI`): the message says which.
pub fn venv_python(packages: &[&str]) -> PathBuf {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("python-venvs");
    fs::create_dir_all(&root).expect("create the venv root");
    let mut hasher = DefaultHasher::new();
    packages.hash(&mut hasher);
    let name = format!("venv-{:016x}", hasher.finish());
    let venv = root.join(&name);
    let lock = File::create(root.join(format!("{name}.lock"))).expect("create the venv lock");
    lock.lock().expect("lock the venv");
    let python = venv.join("bin").join("python");
    if !venv.join(COMPLETE_MARKER).is_file() {
        create(&venv, packages);
    }
    lock.unlock().expect("unlock the venv");
    python
}

fn create(venv: &Path, packages: &[&str]) {
    if venv.exists() {
        // A venv left half-made by an interrupted run.
        fs::remove_dir_all(venv).expect("remove a half-made venv");
    }
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(venv)
        .output()
        .unwrap_or_else(|e| {
            panic!("this test needs python3 (3.9 or later, with venv) on PATH: {e}")
        });
    assert!(
        made.status.success(),
        "python3 -m venv failed (on Debian: apt-get install python3-venv): {}",
        String::from_utf8_lossy(&made.stderr)
    );
    let installed = Command::new(venv.join("bin").join("python"))
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-input",
        ])
        .args(packages)
        .output()
        .expect("run pip");
    assert!(
        installed.status.success(),
        "pip could not install {packages:?} (this test needs PyPI): {}",
        String::from_utf8_lossy(&installed.stderr)
    );
    fs::write(venv.join(COMPLETE_MARKER), packages.join("\n")).expect("mark the venv complete");
}

/// Runs `script` with the venv's `python` and `args`, asserting that it succeeds; returns
/// its stdout.
pub fn run_python(python: &Path, script: &str, args: &[&str]) -> String {
    run_python_with_env(python, script, args, &[])
}

/// As [`run_python`], with environment variables set (`HOME`, for libraries that keep keys
/// there).
pub fn run_python_with_env(
    python: &Path,
    script: &str,
    args: &[&str],
    env: &[(&str, &Path)],
) -> String {
    let output = Command::new(python)
        .arg("-c")
        .arg(script)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run python");
    assert!(
        output.status.success(),
        "python failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}
