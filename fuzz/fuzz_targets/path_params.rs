//! Path parameters into every shape `Path<T>` supports: errors, no panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hyperws::fuzz::path_params(data));
