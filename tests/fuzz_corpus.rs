//! Replays the fuzz corpora (fuzz/corpus/engine, fuzz/corpus/cluster) and the saved crashing inputs (fuzz/regressions, fuzz/regressions/cluster) through the fuzz harnesses, so every `cargo test` checks them again.
#![cfg(not(target_arch = "wasm32"))]

#[path = "../fuzz/harness.rs"]
mod harness;

#[path = "../fuzz/cluster_harness.rs"]
mod cluster_harness;

use std::path::{Path, PathBuf};

fn inputs(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
        .collect();
    files.sort();
    files
}

fn replay(files: &[PathBuf]) {
    replay_with(files, "engine", harness::run);
}

fn replay_with(files: &[PathBuf], target: &str, run: fn(&[u8])) {
    for file in files {
        let data = std::fs::read(file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
        let result = std::panic::catch_unwind(|| run(&data));
        if result.is_err() {
            panic!("fuzz input {} fails the harness (replay: cargo +nightly fuzz run {target} {0})", file.display());
        }
    }
}

#[test]
fn harness_mints_tokens_the_engine_accepts() {
    harness::self_check();
}

#[test]
fn corpus_replays_clean() {
    let files = inputs("fuzz/corpus/engine");
    assert!(!files.is_empty(), "fuzz/corpus/engine is empty");
    replay(&files);
}

#[test]
fn regressions_replay_clean() {
    replay(&inputs("fuzz/regressions"));
}

#[test]
fn cluster_corpus_replays_clean() {
    let files = inputs("fuzz/corpus/cluster");
    assert!(!files.is_empty(), "fuzz/corpus/cluster is empty");
    replay_with(&files, "cluster", cluster_harness::run);
}

#[test]
fn cluster_regressions_replay_clean() {
    replay_with(&inputs("fuzz/regressions/cluster"), "cluster", cluster_harness::run);
}

/// `ROLLCALL_FUZZ_INPUT=path ROLLCALL_FUZZ_TRACE=1 cargo test --test fuzz_corpus one_input -- --nocapture`
/// replays one input and prints its events.
#[test]
fn one_input() {
    if let Some(path) = std::env::var_os("ROLLCALL_FUZZ_INPUT") {
        harness::run(&std::fs::read(path).expect("read ROLLCALL_FUZZ_INPUT"));
    }
}

/// The same for the cluster target: `ROLLCALL_FUZZ_CLUSTER_INPUT=path ROLLCALL_FUZZ_TRACE=1 cargo test --test fuzz_corpus one_cluster_input -- --nocapture`.
#[test]
fn one_cluster_input() {
    if let Some(path) = std::env::var_os("ROLLCALL_FUZZ_CLUSTER_INPUT") {
        cluster_harness::run(&std::fs::read(path).expect("read ROLLCALL_FUZZ_CLUSTER_INPUT"));
    }
}
