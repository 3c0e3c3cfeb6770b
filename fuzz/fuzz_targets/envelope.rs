//! Redis backplane envelopes as another process (or an attacker with access
//! to Redis) could publish them: decoding never panics, and what decodes
//! survives a round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hyperws::fuzz::envelope(data));
