//! Bytes as a stream of WebSocket frames, in random chunkings: the
//! frame-boundary tracker must agree with a reference parser everywhere.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hyperws::fuzz::frame_tracker(data));
