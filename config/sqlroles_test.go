package config_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/wasmq/wasmq/config"
	"github.com/wasmq/wasmq/store"
)

const pg = "[store]\ndriver = \"postgres\"\ndsn = \"postgres://x\"\n"

func TestBadSQLRolesAreRefusedNamingTheKey(t *testing.T) {
	cases := map[string]string{
		"[[tenants]]\nname = \"a\"\ntoken = \"0123456789abcdef\"\nsql_roles = [\"app\"]\n": "tenants[0].sql_roles: enqueueing from SQL needs store.driver = \"postgres\"",
		pg + "[[tenants]]\nname = \"a\"\ntoken = \"0123456789abcdef\"\nsql_roles = [\"app\"]\n" +
			"[[tenants]]\nname = \"b\"\ntoken = \"0123456789abcdeg\"\nsql_roles = [\"app\"]\n": "tenants[1].sql_roles: role \"app\" is mapped to tenant \"a\"",
		pg + "sql_roles = [\"app\"]\n[[tenants]]\nname = \"a\"\ntoken = \"0123456789abcdef\"\n": "store.sql_roles: is for the single default tenant",
		pg + "sql_roles = [\"\"]\n": "store.sql_roles: \"\" is not a PostgreSQL role name",
	}
	for body, want := range cases {
		_, err := config.Load(write(t, body))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want an error containing %q", body, err, want)
		}
	}
}

func TestSQLTenantsCarryRolesAndQuotas(t *testing.T) {
	f, err := config.Load(write(t, pg+"[[tenants]]\nname = \"a\"\ntoken = \"0123456789abcdef\"\nmax_pending = 7\nsql_roles = [\"odoo\", \"cron\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []store.SQLTenant{{Name: "a", Roles: []string{"odoo", "cron"}, MaxPending: 7, MaxChannels: config.DefaultMaxChannels, Key: "tenants[0]"}}
	if got := f.SQLTenants(); !reflect.DeepEqual(got, want) {
		t.Errorf("SQLTenants = %+v, want %+v", got, want)
	}
	f, err = config.Load(write(t, pg+"sql_roles = [\"odoo\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	want = []store.SQLTenant{{Name: "default", Roles: []string{"odoo"}, Key: "store"}}
	if got := f.SQLTenants(); !reflect.DeepEqual(got, want) {
		t.Errorf("without tenants: SQLTenants = %+v, want %+v", got, want)
	}
}
