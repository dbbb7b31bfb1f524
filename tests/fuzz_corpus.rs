//! Replays the saved fuzz corpora (`fuzz/corpus/<target>/`) through the
//! fuzz targets' own bodies, on stable Rust: every input must pass the
//! target's checks without panicking. The bodies live in
//! `fuzz/src/lib.rs`, compiled here as a module, so the replay is exactly
//! what `cargo fuzz run <target>` runs.

#[path = "../fuzz/src/lib.rs"]
mod fuzz_targets;

use std::path::{Path, PathBuf};

/// The corpus files of `target`, sorted; fails when the directory is
/// missing or holds no file, so a lost corpus cannot pass silently.
fn corpus_files(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus directory {} is missing: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "corpus directory {} holds no input",
        dir.display()
    );
    files
}

/// Runs every corpus input of `target`, reporting all failing files at once.
fn replay(target: &str) {
    let (_, body) = fuzz_targets::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .unwrap_or_else(|| panic!("no fuzz target named {target}"));
    let files = corpus_files(target);
    let started = std::time::Instant::now();
    let failed: Vec<String> = files
        .iter()
        .filter(|file| {
            let data = std::fs::read(file)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
            std::panic::catch_unwind(|| body(&data)).is_err()
        })
        .map(|file| file.display().to_string())
        .collect();
    println!(
        "{target}: replayed {} inputs in {:?}",
        files.len(),
        started.elapsed()
    );
    assert!(
        failed.is_empty(),
        "{} of {} `{target}` corpus inputs failed (panic messages above):\n{}",
        failed.len(),
        files.len(),
        failed.join("\n")
    );
}

#[test]
fn request_corpus_replays_cleanly() {
    replay("request");
}

#[test]
fn router_corpus_replays_cleanly() {
    replay("router");
}

#[test]
fn csr_corpus_replays_cleanly() {
    replay("csr");
}

#[test]
fn config_corpus_replays_cleanly() {
    replay("config");
}

#[test]
fn inspect_corpus_replays_cleanly() {
    replay("inspect");
}

/// Each fuzz target file has a body in `TARGETS` and so a replay above.
#[test]
fn every_fuzz_target_is_replayed() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/fuzz_targets");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{} is missing: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter_map(|path| Some(path.file_stem()?.to_str()?.to_owned()))
        .collect();
    files.sort();
    let mut names: Vec<String> = fuzz_targets::TARGETS
        .iter()
        .map(|(name, _)| (*name).to_owned())
        .collect();
    names.sort();
    assert_eq!(files, names);
}
