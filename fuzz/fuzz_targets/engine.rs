//! The engine fuzz target: host events and client frames against one
//! engine, with invariants checked after every event (see ../harness.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../harness.rs"]
mod harness;

fuzz_target!(|data: &[u8]| harness::run(data));
