//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) through
//! the checks the fuzz targets run, on the stable toolchain: an input that
//! once found a fault, or any other saved input, fails `cargo test` if the
//! parser regresses on it.

use std::path::PathBuf;

use onestop_domain::checks::TARGETS;

#[test]
fn every_committed_corpus_input_passes_its_parsers_checks() {
    let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    for (target, check) in TARGETS {
        let dir = corpus.join(target);
        let inputs: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.expect("corpus entry").path())
            .collect();
        assert!(!inputs.is_empty(), "{target} has a corpus");
        for input in inputs {
            let data = std::fs::read(&input).expect("corpus input reads");
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(outcome.is_ok(), "{target} fails on {}", input.display());
        }
    }
}

#[test]
fn every_fuzz_target_has_a_check_and_every_check_a_target() {
    let targets = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/fuzz_targets");
    let mut files: Vec<String> = std::fs::read_dir(&targets)
        .expect("fuzz targets")
        .map(|entry| {
            let path = entry.expect("target").path();
            path.file_stem().unwrap().to_string_lossy().into_owned()
        })
        .collect();
    files.sort();
    let mut names: Vec<String> = TARGETS.iter().map(|(name, _)| name.to_string()).collect();
    names.sort();
    assert_eq!(files, names);
}
