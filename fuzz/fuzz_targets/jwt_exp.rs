#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| reqwest_bearer_fuzz::cases::jwt_exp(data));
