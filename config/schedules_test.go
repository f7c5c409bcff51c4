package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestScheduleEntriesAreCheckedNamingTheirKey(t *testing.T) {
	for _, c := range []struct{ toml, want string }{
		{"[[schedules]]\nname = \"a\"\ncron = \"0 3 * *\"\nfunc = \"m.f\"\n", "schedules[0].cron:"},
		{"[[schedules]]\nname = \"a\"\ncron = \"@daily\"\ntimezone = \"Mars/Base\"\nfunc = \"m.f\"\n", "schedules[0].timezone:"},
		{"[[schedules]]\nname = \"a\"\ncron = \"@daily\"\nfunc = \"m.f\"\n[[schedules]]\nname = \"b\"\ntenant = \"ghost\"\ncron = \"@daily\"\nfunc = \"m.f\"\n", "schedules[1].tenant:"},
		{"[[schedules]]\nname = \"a\"\ncron = \"@daily\"\nfunc = \"m.f\"\ncolour = \"red\"\n", "unknown key schedules.colour"},
	} {
		path := filepath.Join(t.TempDir(), "wasmq.toml")
		os.WriteFile(path, []byte(c.toml), 0o644)
		_, err := Load(path)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want an error naming %s", c.toml, err, c.want)
		}
	}
	path := filepath.Join(t.TempDir(), "wasmq.toml")
	os.WriteFile(path, []byte(`[[schedules]]
name = "nightly"
cron = "0 3 * * *"
timezone = "Europe/Brussels"
func = "report.word_count"
args = ["daily", 2]
kwargs = { lang = "fr" }
identity_key = "nightly-{due}"
`), 0o644)
	f, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	defs, err := f.ScheduleDefinitions()
	if err != nil || len(defs) != 1 || defs[0].Tenant != "default" || string(defs[0].Args) != `["daily",2]` ||
		string(defs[0].Kwargs) != `{"lang":"fr"}` || defs[0].Context != nil || defs[0].Timezone != "Europe/Brussels" {
		t.Fatalf("definitions: %+v, %v", defs, err)
	}
}
