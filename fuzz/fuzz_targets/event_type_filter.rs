#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| onestop_domain::checks::event_type_filter(data));
