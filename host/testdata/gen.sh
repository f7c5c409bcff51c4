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
wat2wasm amplify.wat -o amplify.wasm
wat2wasm --debug-names named_trap.wat -o named_trap.wasm
# Modules that lie about a length: 4G locals, a 4 GiB data segment, 4G
# functions, 4G parameters, a 4 GiB module name. wazero would allocate
# what they claim while decoding; the host must refuse them first.
H='\000asm\001\000\000\000'
printf "$H"'\001\004\001\140\000\000\003\002\001\000\012\012\001\010\001\377\377\377\377\017\177\013' > lie_locals.wasm
printf "$H"'\005\003\001\000\001\013\013\001\000\101\000\013\377\377\377\377\017\000' > lie_data.wasm
printf "$H"'\003\005\377\377\377\377\017' > lie_funcs.wasm
printf "$H"'\001\010\001\140\377\377\377\377\017\000' > lie_params.wasm
printf "$H"'\000\014\004name\000\005\377\377\377\377\017' > lie_modname.wasm
wat2wasm --debug-names kernel.wat -o kernel.wasm
wat2wasm progress.wat -o progress.wasm
