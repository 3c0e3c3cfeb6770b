//! See `hyperws::fuzz::inflate_stream`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hyperws::fuzz::inflate_stream(data));
