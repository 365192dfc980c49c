//! Fuzz target: `sealwatch::fuzzing::event_line` (see src/fuzzing.rs for what it drives and checks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sealwatch::fuzzing::event_line(data));
