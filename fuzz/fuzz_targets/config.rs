//! Fuzz target `config`: the body is [`session_ca_fuzz::config`], which
//! `tests/fuzz_corpus.rs` replays over the saved corpus.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| session_ca_fuzz::config(data));
