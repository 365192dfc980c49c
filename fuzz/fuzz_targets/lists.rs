//! Fuzz target: `sealwatch::fuzzing::lists` (see src/fuzzing.rs for what it drives and checks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sealwatch::fuzzing::lists(data));
