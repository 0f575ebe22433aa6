//! The cluster fuzz target: two engines in cluster mode and a model store,
//! fed the store's messages (reordered, dropped, duplicated), made-up and
//! mutated ones, and raw text at every `cluster_*` entry point, with
//! invariants checked after every step (see ../cluster_harness.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../cluster_harness.rs"]
mod cluster_harness;

fuzz_target!(|data: &[u8]| cluster_harness::run(data));
