#![allow(dead_code)]
// Just enough JSON reading for the testkit: find a member of an object, the
// items of an array, and read numbers, booleans and simple strings.

fn ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && (b[i] == b' ' || b[i] == b'\n' || b[i] == b'\r' || b[i] == b'\t') {
        i += 1;
    }
    i
}

fn skip_string(b: &[u8], mut i: usize) -> usize {
    i += 1; // opening quote
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    i
}

/// Index just past the value starting at i.
fn skip_value(b: &[u8], i: usize) -> usize {
    let i = ws(b, i);
    if i >= b.len() {
        return i;
    }
    match b[i] {
        b'"' => skip_string(b, i),
        b'{' | b'[' => {
            let mut depth = 0;
            let mut j = i;
            while j < b.len() {
                match b[j] {
                    b'"' => {
                        j = skip_string(b, j);
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return j + 1;
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            j
        }
        _ => {
            let mut j = i;
            while j < b.len() && !b",}] \n\r\t".contains(&b[j]) {
                j += 1;
            }
            j
        }
    }
}

/// The raw text of member `key` of the object `obj`.
pub fn get<'a>(obj: &'a [u8], key: &str) -> Option<&'a [u8]> {
    let mut i = ws(obj, 0);
    if i >= obj.len() || obj[i] != b'{' {
        return None;
    }
    i += 1;
    loop {
        i = ws(obj, i);
        if i >= obj.len() || obj[i] != b'"' {
            return None;
        }
        let kend = skip_string(obj, i);
        let k = &obj[i + 1..kend - 1];
        i = ws(obj, kend);
        if i >= obj.len() || obj[i] != b':' {
            return None;
        }
        let vstart = ws(obj, i + 1);
        let vend = skip_value(obj, vstart);
        if k == key.as_bytes() {
            return Some(&obj[vstart..vend]);
        }
        i = ws(obj, vend);
        if i >= obj.len() || obj[i] != b',' {
            return None;
        }
        i += 1;
    }
}

/// The raw text of each item of the array `arr`.
pub fn items(arr: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut i = ws(arr, 0);
    if i >= arr.len() || arr[i] != b'[' {
        return out;
    }
    i = ws(arr, i + 1);
    if i < arr.len() && arr[i] == b']' {
        return out;
    }
    while i < arr.len() {
        let s = ws(arr, i);
        let e = skip_value(arr, s);
        out.push(&arr[s..e]);
        i = ws(arr, e);
        if i >= arr.len() || arr[i] != b',' {
            break;
        }
        i += 1;
    }
    out
}

pub fn int(v: Option<&[u8]>, def: i64) -> i64 {
    v.and_then(|b| core::str::from_utf8(b).ok())
        .and_then(|s| s.parse::<f64>().ok())
        .map(|f| f as i64)
        .unwrap_or(def)
}

pub fn boolean(v: Option<&[u8]>) -> bool {
    v == Some(b"true")
}

/// A string value with the common escapes undone; None if not a string.
pub fn string(v: Option<&[u8]>) -> Option<String> {
    let b = v?;
    if b.len() < 2 || b[0] != b'"' {
        return None;
    }
    let mut out = String::new();
    let s = core::str::from_utf8(&b[1..b.len() - 1]).ok()?;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(o) => out.push(o),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// Quotes s as a JSON string.
pub fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
