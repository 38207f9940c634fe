#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| procshare::fuzzing::pipe_ring(data));
