// An ordinary Extism plugin, written for any Extism host and not for
// wasmq: the PDK's count-vowels example. It reads its input as text,
// reads the "vowels" config key with Config.get (Extism's config_get),
// and outputs a JSON document. wasmq runs it unchanged when its sidecar
// says input = "raw" (docs/abi.md, "Running an unmodified Extism plugin").
import { Config, Host, LogLevel, Memory } from "@extism/as-pdk";

// The PDK 1.0 has no helper for error_set: declared as every PDK does.
@external("extism:host/env", "error_set")
declare function error_set(offset: u64): void;


export function count_vowels(): i32 {
  const text = Host.inputString();
  let vowels = Config.get("vowels");
  if (vowels === null) {
    vowels = "aeiouAEIOU";
  }
  let count = 0;
  for (let i = 0; i < text.length; i++) {
    if (vowels.includes(text.charAt(i))) {
      count++;
    }
  }
  const greeting = Config.get("greeting");
  let out = '{"count":' + count.toString() + ',"vowels":"' + vowels + '"';
  if (greeting !== null) {
    out += ',"greeting":"' + greeting + '"';
  }
  Host.outputString(out + "}");
  return 0;
}

// shout answers its input in capitals, as text (not JSON): wasmq stores
// such an output as a JSON string.
export function shout(): i32 {
  Host.outputString(Host.inputString().toUpperCase());
  return 0;
}

// fail sets an error the way every Extism plugin does (error_set and a
// non-zero return); wasmq records it in exc_message and exc_info.
export function fail(): i32 {
  Host.log(LogLevel.Warn, "looking at the text");
  error_set(Memory.allocateString("cannot count the vowels of " + Host.inputString()).offset);
  return 1;
}

export function myAbort(message: string | null, fileName: string | null, lineNumber: u32, columnNumber: u32): void {}
