//! Wire protocol v1: JSON text frames. [`request`] parses what clients send;
//! [`reply`] writes what the engine sends. docs/PROTOCOL.md is the contract.

pub mod reply;
pub mod request;

/// The protocol version in the `welcome` frame.
pub const VERSION: u32 = 1;
