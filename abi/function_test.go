package abi_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/wasmq/wasmq/abi"
)

// A plugin name is a plain file name: nothing that climbs out of the
// plugins folder, hides a file or holds a separator.
func TestPluginNamesArePlainFileNames(t *testing.T) {
	for _, ok := range []string{"mail", "Mail_2", "res.partner", "a-b", "_x", strings.Repeat("m", 128)} {
		if err := abi.CheckPluginName("module", ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", "../x", "x/y", `x\y`, ".hidden", "-flag", "x.", "a b", "x\x00", "é", strings.Repeat("m", 129)} {
		if err := abi.CheckPluginName("module", bad); !errors.Is(err, abi.ErrInvalid) {
			t.Errorf("%q: %v, want ErrInvalid", bad, err)
		}
	}
}
