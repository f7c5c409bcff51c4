// An example job module in AssemblyScript with the official @extism/as-pdk:
// greet.hello answers a greeting (non-ASCII on purpose); greet.busy shows
// how a job asks to be retried, in one line.
import { Host, Memory } from "@extism/as-pdk";

// wasmq's host functions live in extism:host/user (docs/abi.md).
@external("extism:host/user", "wasmq_retry_v1")
declare function wasmq_retry_v1(seconds: i64, ignoreRetry: i32, reason: u64): void;

@external("extism:host/user", "wasmq_progress_v1")
declare function wasmq_progress_v1(percent: i32, message: u64): i32;

// progress reports the job's progress, 0 to 100, with a short message;
// false when percent is out of range.
function progress(percent: i32, message: string): bool {
  return wasmq_progress_v1(percent, Memory.allocateString(message).offset) == 0;
}

function retry(seconds: i64, reason: string): void {
  wasmq_retry_v1(seconds, 0, Memory.allocateString(reason).offset);
}

// Host.outputString would truncate non-ASCII text: write UTF-8 bytes.
function output(s: string): void {
  Host.output(Uint8Array.wrap(String.UTF8.encode(s)));
}

export function hello(): i32 {
  const input = Host.input();
  progress(100, "greeted");
  output('{"greeting":"Bonjour, 你好, hello","input_bytes":' + input.length.toString() + "}");
  return 0;
}

export function busy(): i32 {
  retry(30, "the mail server is busy");
  return 0;
}

export function myAbort(message: string | null, fileName: string | null, lineNumber: u32, columnNumber: u32): void {}

// echo returns its input unchanged: the baseline cost of a call.
export function echo(): i32 {
  Host.output(Host.input());
  return 0;
}
