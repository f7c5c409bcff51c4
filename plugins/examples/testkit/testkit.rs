//! testkit: job functions whose behaviour the caller dictates, for the test
//! suites and for trying channels out. See README.md for each contract.

mod json;
mod pdk;

fn doc() -> Vec<u8> {
    pdk::input()
}

fn kwargs(d: &[u8]) -> &[u8] {
    json::get(d, "kwargs").unwrap_or(b"{}")
}

fn attempt(d: &[u8]) -> i64 {
    json::int(json::get(d, "context").and_then(|c| json::get(c, "attempt")), 0)
}

/// The result of timed functions: when the body ran, by the host's clock.
fn timed(started: i64, attempt: i64, extra: &str) {
    let out = format!(
        "{{\"started_ns\":{},\"ended_ns\":{},\"attempt\":{}{}}}",
        started,
        pdk::now_ns(),
        attempt,
        extra
    );
    pdk::output(out.as_bytes());
}

/// Returns its input unchanged.
#[no_mangle]
pub extern "C" fn echo() -> i32 {
    pdk::output(&pdk::input());
    0
}

/// Does nothing and returns nothing: a job that costs only what the
/// sandbox and the queue cost, to compare with other queues' no-op jobs
/// (`wasmq bench --func testkit.noop`).
#[no_mangle]
pub extern "C" fn noop() -> i32 {
    0
}

/// Sleeps kwargs.ms milliseconds through the host.
#[no_mangle]
pub extern "C" fn sleep() -> i32 {
    let started = pdk::now_ns();
    let d = doc();
    let ms = json::int(json::get(kwargs(&d), "ms"), 0);
    let full = pdk::sleep_ms(ms);
    timed(started, attempt(&d), &format!(",\"slept_ms\":{},\"cut_short\":{}", ms, !full));
    0
}

/// Reports its progress kwargs.steps times (default 10), kwargs.ms apart
/// (default 100), from 0 to 100 with the message "step k/n"; then asks
/// the host to take 101, which it must refuse.
#[no_mangle]
pub extern "C" fn progress() -> i32 {
    let d = doc();
    let steps = json::int(json::get(kwargs(&d), "steps"), 10).max(1);
    let ms = json::int(json::get(kwargs(&d), "ms"), 100);
    for k in 0..=steps {
        pdk::progress((k * 100 / steps) as i32, &format!("step {}/{}", k, steps));
        if k < steps {
            pdk::sleep_ms(ms);
        }
    }
    let refused = !pdk::progress(101, "");
    pdk::output(format!("{{\"steps\":{},\"refused_101\":{}}}", steps, refused).as_bytes());
    0
}

/// Asks to be retried after kwargs.seconds (0: the function's pattern),
/// not counting the attempt when kwargs.ignore_retry is true.
#[no_mangle]
pub extern "C" fn retry() -> i32 {
    let d = doc();
    let k = kwargs(&d);
    pdk::retry(json::int(json::get(k, "seconds"), 0), json::boolean(json::get(k, "ignore_retry")), "testkit asked to retry");
    0
}

/// Fails with kwargs.message as an ordinary guest error.
#[no_mangle]
pub extern "C" fn fail() -> i32 {
    let d = doc();
    let msg = json::string(json::get(kwargs(&d), "message")).unwrap_or_else(|| "testkit failure".to_string());
    pdk::set_error(&msg);
    1
}

/// Fails for good (never retried), with kwargs.message.
#[no_mangle]
pub extern "C" fn fail_final() -> i32 {
    let d = doc();
    let msg = json::string(json::get(kwargs(&d), "message")).unwrap_or_else(|| "testkit final failure".to_string());
    pdk::fail(&msg);
    0
}

#[no_mangle]
pub extern "C" fn nothing_to_do() -> i32 {
    pdk::nothing_to_do("testkit had nothing to do");
    0
}

/// Runs step k of args when context.attempt is k (the last step repeats):
/// "ok", "ok:<ms>", "retry", "retry:<s>", "retry_ignore:<s>",
/// "fail:<msg>", "final:<msg>", "hang".
#[no_mangle]
pub extern "C" fn script() -> i32 {
    let started = pdk::now_ns();
    let d = doc();
    let k = attempt(&d);
    let steps = json::items(json::get(&d, "args").unwrap_or(b"[]"));
    if steps.is_empty() {
        timed(started, k, ",\"step\":\"ok\"");
        return 0;
    }
    let idx = if k < 1 { 0 } else { ((k - 1) as usize).min(steps.len() - 1) };
    let step = json::string(Some(steps[idx])).unwrap_or_else(|| "ok".to_string());
    let (verb, arg) = match step.find(':') {
        Some(i) => (&step[..i], &step[i + 1..]),
        None => (step.as_str(), ""),
    };
    pdk::log_info(&format!("script attempt {} step {}", k, step));
    let num = |s: &str| s.parse::<i64>().unwrap_or(0);
    match verb {
        "ok" => {
            if !arg.is_empty() {
                pdk::sleep_ms(num(arg));
            }
            timed(started, k, &format!(",\"step\":{}", json::quote(&step)));
            0
        }
        "retry" => {
            pdk::retry(num(arg), false, &format!("script step {}", step));
            0
        }
        "retry_ignore" => {
            pdk::retry(num(arg), true, &format!("script step {}", step));
            0
        }
        "fail" => {
            pdk::set_error(arg);
            1
        }
        "final" => {
            pdk::fail(arg);
            0
        }
        "hang" => loop {
            core::hint::spin_loop();
        },
        _ => {
            pdk::set_error(&format!("unknown script step {:?}", step));
            1
        }
    }
}
