//! See `hyperws::fuzz::deflate_round_trip`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hyperws::fuzz::deflate_round_trip(data));
