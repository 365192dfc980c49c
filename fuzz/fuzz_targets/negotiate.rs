//! Fuzz target: `sealwatch::fuzzing::negotiate` (see src/fuzzing.rs for what it drives and checks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sealwatch::fuzzing::negotiate(data));
