//! Runnable examples for the mod8 crates, one per crate plus the full flow.
//!
//! Run one with `cargo run -p mod8-examples --example <name>`; each uses the embedded
//! defaults unless the matching `MOD8_*_URL` variable is set.
