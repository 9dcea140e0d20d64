//! `bench-report`: prints the ratio tables from criterion's saved results.
//!
//! ```text
//! cargo bench -p trailmix-benches            # or: -- --quick for a smoke run
//! cargo run -p trailmix-benches --bin bench-report [-- --criterion-dir DIR]
//! ```
//!
//! The results are read from `DIR`, else `$CARGO_TARGET_DIR/criterion`, else the workspace's
//! `target/criterion`. Missing or unreadable results are reported in the output, never fatal.

use std::path::PathBuf;
use std::process::ExitCode;

use trailmix_benches::report;

const USAGE: &str = "usage: bench-report [--criterion-dir DIR]

Prints trailmix-db's benchmark figures against the baselines measured in the same run, as
Markdown tables (see docs/performance.md). Reads criterion's saved results from DIR, else
$CARGO_TARGET_DIR/criterion, else the workspace's target/criterion.";

fn default_dir() -> PathBuf {
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(target).join("criterion");
    }
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map_or_else(|| manifest.join("target"), |ws| ws.join("target"))
        .join("criterion")
}

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let mut dir = None;
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some("-h" | "--help") => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            Some("--criterion-dir") => {
                let Some(value) = args.next() else {
                    eprintln!("bench-report: --criterion-dir needs a directory\n\n{USAGE}");
                    return ExitCode::from(2);
                };
                dir = Some(PathBuf::from(value));
            }
            _ => {
                eprintln!(
                    "bench-report: unexpected argument {}\n\n{USAGE}",
                    arg.to_string_lossy()
                );
                return ExitCode::from(2);
            }
        }
    }
    let dir = dir.unwrap_or_else(default_dir);
    let results = report::load(&dir);
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        println!(
            "load average now: {}",
            load.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    print!("{}", report::render(&results));
    ExitCode::SUCCESS
}
