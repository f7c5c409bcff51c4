package runner_test

import (
	"strings"
	"testing"

	"github.com/wasmq/wasmq/runner"
)

func TestChannelConfigRefusesAnInvalidNameNamingTheEntry(t *testing.T) {
	for _, entry := range []string{"bad name:2", "../x:1", "mail..bulk", "mail.:1", "a.b.c.d.e.f.g.h:1", strings.Repeat("x", 201)} {
		_, err := runner.ParseChannels("root:4," + entry)
		if err == nil || !strings.Contains(err.Error(), "channel entry \""+entry+"\"") {
			t.Errorf("channels %q: error %v, want one naming the entry", entry, err)
		}
	}
	tree, err := runner.ParseChannels("root:4, mail : 2 ,root.export:1:sequential")
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := tree.Lookup("mail"); !ok || c.Name != "root.mail" || c.Capacity != 2 {
		t.Fatalf("mail: %+v %v", c, ok)
	}
}
