//! See `hyperws::fuzz::deflate_offer`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hyperws::fuzz::deflate_offer(data));
