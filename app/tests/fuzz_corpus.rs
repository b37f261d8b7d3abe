//! Replays the sum-evens fuzz corpus (`fuzz/corpus/sum_evens/`: the seeds written by hand and
//! every input `just fuzz` kept because it reached new code) through the parser, whole and in
//! blocks, against the obvious computation. A crash the fuzzer finds is fixed by adding its
//! input here, so it stays fixed.

use std::path::Path;

#[test]
fn every_corpus_input_agrees_with_the_reference() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/sum_evens");
    let mut inputs = 0;
    for entry in std::fs::read_dir(&dir).expect("the corpus directory") {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        if let Err(difference) = glassbox::sum_evens::oracle::check(&data) {
            panic!("{}: {difference}", path.display());
        }
        inputs += 1;
    }
    assert!(inputs >= 10, "the corpus has its seeds ({inputs} inputs)");
}
