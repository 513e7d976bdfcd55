//! The fuzz targets' checks, in a module `tests/fuzz_corpus.rs` includes
//! too, so CI replays the committed corpus on a stable toolchain.
#![forbid(unsafe_code)]

pub mod cases;
