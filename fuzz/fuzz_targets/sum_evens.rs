//! The sum-evens parser against the obvious computation, on any bytes, whole and cut into
//! blocks. Run with `just fuzz` (needs nightly and cargo-fuzz); the corpus it grows in
//! `fuzz/corpus/sum_evens/` is replayed by `cargo test` (app/tests/fuzz_corpus.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(difference) = glassbox::sum_evens::oracle::check(data) {
        panic!("{difference}");
    }
});
