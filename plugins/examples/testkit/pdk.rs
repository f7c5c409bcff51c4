#![allow(dead_code)]
// A minimal in-tree binding of the Extism guest ABI (`extism:host/env`) and of
// wasmq's host functions (`extism:host/user`), with the function names of the
// extism-pdk crate (`input`, `output`, `set_error`), because crates.io is not
// reachable here. Pointers are offsets into the host's kernel memory.

#[link(wasm_import_module = "extism:host/env")]
extern "C" {
    fn input_length() -> u64;
    fn input_load_u8(offs: u64) -> u8;
    fn input_load_u64(offs: u64) -> u64;
    fn alloc(n: u64) -> u64;
    fn store_u8(offs: u64, v: u8);
    fn store_u64(offs: u64, v: u64);
    fn output_set(offs: u64, n: u64);
    fn error_set(offs: u64);
}

#[link(wasm_import_module = "extism:host/user")]
extern "C" {
    fn wasmq_retry_v1(seconds: i64, ignore_retry: i32, reason: u64);
    fn wasmq_fail_v1(message: u64);
    fn wasmq_nothing_to_do_v1(reason: u64);
    fn wasmq_sleep_v1(ms: i64) -> i32;
    fn wasmq_now_v1() -> i64;
    fn wasmq_log_v1(level: i32, message: u64);
    fn wasmq_progress_v1(percent: i32, message: u64) -> i32;
}

/// The whole input document, read 8 bytes per host call straight into the
/// buffer (as extism-pdk does: no per-chunk `extend_from_slice`).
pub fn input() -> Vec<u8> {
    unsafe {
        let n = input_length() as usize;
        let mut buf: Vec<u8> = Vec::with_capacity(n);
        let p = buf.as_mut_ptr();
        let mut i = 0;
        while i + 8 <= n {
            (p.add(i) as *mut u64).write_unaligned(input_load_u64(i as u64).to_le());
            i += 8;
        }
        while i < n {
            *p.add(i) = input_load_u8(i as u64);
            i += 1;
        }
        buf.set_len(n);
        buf
    }
}

/// Copies bytes into a new kernel-memory block and returns its offset.
pub fn memory_new(data: &[u8]) -> u64 {
    unsafe {
        let offs = alloc(data.len() as u64);
        let mut i = 0;
        let p = data.as_ptr();
        while i + 8 <= data.len() {
            store_u64(offs + i as u64, u64::from_le((p.add(i) as *const u64).read_unaligned()));
            i += 8;
        }
        while i < data.len() {
            store_u8(offs + i as u64, data[i]);
            i += 1;
        }
        offs
    }
}

pub fn output(data: &[u8]) {
    let offs = memory_new(data);
    unsafe { output_set(offs, data.len() as u64) }
}

pub fn set_error(msg: &str) {
    let offs = memory_new(msg.as_bytes());
    unsafe { error_set(offs) }
}

/// Ask wasmq to try again later: `seconds` <= 0 lets the function's
/// retry_pattern decide; `ignore_retry` does not count this attempt.
pub fn retry(seconds: i64, ignore_retry: bool, reason: &str) {
    let r = memory_new(reason.as_bytes());
    unsafe { wasmq_retry_v1(seconds, ignore_retry as i32, r) }
}

/// Fail for good: no retry.
pub fn fail(message: &str) {
    let m = memory_new(message.as_bytes());
    unsafe { wasmq_fail_v1(m) }
}

pub fn nothing_to_do(reason: &str) {
    let r = memory_new(reason.as_bytes());
    unsafe { wasmq_nothing_to_do_v1(r) }
}

/// Sleeps; returns false when the job's deadline cut the sleep short.
pub fn sleep_ms(ms: i64) -> bool {
    unsafe { wasmq_sleep_v1(ms) == 0 }
}

pub fn now_ns() -> i64 {
    unsafe { wasmq_now_v1() }
}

/// Reports the job's progress, 0 to 100, with a short message (at most
/// 200 characters are kept); false when percent is out of range.
pub fn progress(percent: i32, msg: &str) -> bool {
    let m = memory_new(msg.as_bytes());
    unsafe { wasmq_progress_v1(percent, m) == 0 }
}

pub fn log_info(msg: &str) {
    let m = memory_new(msg.as_bytes());
    unsafe { wasmq_log_v1(1, m) }
}
