//! An example job module in Rust: `invoice.total` adds up invoice lines;
//! `invoice.sync` shows how a job asks to be retried.
//!
//! Built with Debian's rustc and no crates (crates.io is out of reach here):
//! `pdk` is an in-tree binding with the extism-pdk crate's function names,
//! shared with the testkit. With extism-pdk the bodies stay the same.

#[path = "../testkit/pdk.rs"]
mod pdk;
#[path = "../testkit/json.rs"]
mod json;

/// args: a list of line amounts in cents → {"lines": n, "total": sum}.
#[no_mangle]
pub extern "C" fn total() -> i32 {
    let input = pdk::input();
    let lines = json::items(json::get(&input, "args").unwrap_or(b"[]"));
    let mut sum: i64 = 0;
    for (i, l) in lines.iter().enumerate() {
        // The runner keeps the latest report, written once a second.
        pdk::progress((i * 100 / lines.len()) as i32, &format!("line {} of {}", i + 1, lines.len()));
        match core::str::from_utf8(l).ok().and_then(|s| s.trim().parse::<i64>().ok()) {
            Some(v) => sum += v,
            None => {
                pdk::set_error(&format!("line {} is not a whole number of cents", String::from_utf8_lossy(l)));
                return 1;
            }
        }
    }
    pdk::progress(100, "total computed");
    pdk::output(format!("{{\"lines\":{},\"total\":{}}}", lines.len(), sum).as_bytes());
    0
}

/// Pretends the remote ERP is busy until kwargs.ready_at_attempt: asks to
/// be retried in 5 seconds, in one line.
#[no_mangle]
pub extern "C" fn sync() -> i32 {
    let input = pdk::input();
    let ready = json::int(json::get(json::get(&input, "kwargs").unwrap_or(b"{}"), "ready_at_attempt"), 1);
    let attempt = json::int(json::get(&input, "context").and_then(|c| json::get(c, "attempt")), 1);
    if attempt < ready {
        pdk::retry(5, false, "the ERP is busy");
        return 0;
    }
    pdk::output(b"{\"synced\":true}");
    0
}
