#!/bin/sh
# Rebuilds the fixture modules from their WAT sources (needs wabt).
set -e
cd "$(dirname "$0")"
sed 's/VERSION/v1/' kit.wat > /tmp/kit_v1.wat && wat2wasm --debug-names /tmp/kit_v1.wat -o kit.wasm
sed 's/VERSION/v2/' kit.wat > /tmp/kit_v2.wat && wat2wasm --debug-names /tmp/kit_v2.wat -o kit_v2.wasm
wat2wasm badimport.wat -o badimport.wasm
printf 'this is not wasm' > notwasm.wasm
wat2wasm --debug-names fib.wat -o fib.wasm
wat2wasm bigmem.wat -o bigmem.wasm
wat2wasm bigmem_exported.wat -o bigmem_exported.wasm
wat2wasm --debug-names renumber.wat -o renumber.wasm
wat2wasm scribble.wat -o scribble.wasm
wat2wasm startloop.wat -o startloop.wasm
wat2wasm initloop.wat -o initloop.wasm
wat2wasm mem32mib.wat -o mem32mib.wasm
