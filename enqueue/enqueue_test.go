package enqueue

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/wasmq/wasmq/abi"
)

var timeZero = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

func TestFuncStringIsTheHumanFormOfTheCall(t *testing.T) {
	got := FuncString("mail.send", json.RawMessage(`[42,"x"]`), json.RawMessage(`{"lang":"fr","a":true}`))
	if want := `mail.send(42, "x", a=true, lang="fr")`; got != want {
		t.Fatalf("%s, want %s", got, want)
	}
}

func TestWhenTakesAnInstantOrSecondsFromNow(t *testing.T) {
	at, err := ParseWhen("eta", json.RawMessage(`"2026-11-22T11:00:00.5+01:00"`), timeZero)
	if err != nil || !at.Equal(time.Date(2026, 11, 22, 10, 0, 0, 5e8, time.UTC)) {
		t.Fatalf("%v %v", at, err)
	}
	in, err := ParseWhen("eta", json.RawMessage(`90`), timeZero)
	if err != nil || !in.Equal(timeZero.Add(90*time.Second)) {
		t.Fatalf("%v %v", in, err)
	}
	if _, err := ParseWhen("eta", json.RawMessage(`1.5`), timeZero); err == nil {
		t.Fatal("a fractional number of seconds was accepted")
	}
}

func TestBatchSizeSplitsContextRecords(t *testing.T) {
	s := &Service{Funcs: funcs{}}
	size := 2
	jobs, err := s.Build(t.Context(), "t", []Request{{Func: "m.f", Context: json.RawMessage(`{"records":[1,2,3,4,5]}`), BatchSize: &size}}, false)
	if err != nil || len(jobs) != 3 {
		t.Fatalf("%d jobs, %v", len(jobs), err)
	}
	if string(jobs[2].Context) != `{"records":[5]}` || jobs[0].Description != "m.f (1/3)" {
		t.Fatalf("%s %s", jobs[2].Context, jobs[0].Description)
	}
}

// A description or identity key at its limit leaves no room for the
// part's suffix: the description gives up its tail (it is a label), the
// key is refused by name (it is an identity, never cut), and no part is
// built that the store would refuse.
func TestBatchSizeKeepsEachPartWithinTheLimits(t *testing.T) {
	s := &Service{Funcs: funcs{}}
	size := 1
	long := strings.Repeat("é", abi.MaxDescription)
	records := json.RawMessage(`{"records":[1,2,3,4,5,6,7,8,9,10,11,12]}`)
	jobs, err := s.Build(t.Context(), "t", []Request{{Func: "m.f", Description: &long, Context: records, BatchSize: &size}}, false)
	if err != nil || len(jobs) != 12 {
		t.Fatalf("%d jobs, %v", len(jobs), err)
	}
	for _, j := range jobs {
		if err := j.Validate(); err != nil {
			t.Fatalf("a part the store refuses: %v", err)
		}
	}
	if d := jobs[11].Description; !strings.HasSuffix(d, "… (12/12)") || utf8.RuneCountInString(d) != abi.MaxDescription {
		t.Fatalf("the last part's description ends %q, %d characters", d[len(d)-20:], utf8.RuneCountInString(d))
	}

	key := strings.Repeat("k", abi.MaxIdentityKey-2)
	_, err = s.Build(t.Context(), "t", []Request{{Func: "m.f", IdentityKey: key, Context: records, BatchSize: &size}}, false)
	var fe *abi.FieldError
	if !errors.As(err, &fe) || fe.Field != "identity_key" || !errors.Is(err, abi.ErrInvalid) || !strings.Contains(fe.Msg, "#12") {
		t.Fatalf("a key with no room for #12: %v", err)
	}
	key = strings.Repeat("k", abi.MaxIdentityKey-3)
	jobs, err = s.Build(t.Context(), "t", []Request{{Func: "m.f", IdentityKey: key, Context: records, BatchSize: &size}}, false)
	if err != nil || jobs[11].IdentityKey != key+"#12" {
		t.Fatalf("a key with room for #12: %v", err)
	}
}

type funcs struct{}

func (funcs) Function(tenant, fn string) (abi.FunctionConfig, error) {
	return abi.FunctionConfig{}, nil
}

func TestSecondsFromNowAreCheckedAtTheirBoundaries(t *testing.T) {
	now := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	for _, raw := range []string{"9223372037", "-9223372037", "3153600001"} {
		if _, err := ParseWhen("eta", json.RawMessage(raw), now); !errors.Is(err, abi.ErrInvalid) {
			t.Errorf("eta %s: %v, want abi.ErrInvalid", raw, err)
		}
	}
	got, err := ParseWhen("eta", json.RawMessage("3153600000"), now)
	if err != nil || got.Year() != 2126 {
		t.Errorf("eta 100 years ahead: %v %v", got, err)
	}
}

func TestFuncStringIsCutOnACharacterBoundary(t *testing.T) {
	args := json.RawMessage(`["` + strings.Repeat("é", 400) + `"]`)
	for pad := 0; pad < 4; pad++ {
		s := FuncString("m."+strings.Repeat("f", pad), args, json.RawMessage(`{}`))
		if !utf8.ValidString(s) || len(s) > 500 {
			t.Fatalf("pad %d: %d bytes, valid UTF-8 %v", pad, len(s), utf8.ValidString(s))
		}
	}
}

// A job's uuid is a UUIDv7: later jobs sort after earlier ones, so new
// jobs land at the end of the store's primary key, not on a random page.
func TestJobUUIDsAreTimeOrdered(t *testing.T) {
	s := &Service{Funcs: funcs{}}
	var last string
	for i := 0; i < 3; i++ {
		jobs, err := s.Build(t.Context(), "t", []Request{{Func: "m.f"}, {Func: "m.g"}}, true)
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range jobs {
			u, err := uuid.Parse(j.UUID)
			if err != nil || u.Version() != 7 || u.String() != j.UUID {
				t.Fatalf("uuid %q: version %v, %v", j.UUID, u.Version(), err)
			}
			if j.UUID[:13] < last[:min(13, len(last))] {
				t.Fatalf("uuid %s made after %s sorts before it", j.UUID, last)
			}
			last = j.UUID
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// Build is public (schedules and plugins' child jobs call it with
// payloads they did not decode from a request): a payload that is not
// valid JSON is refused by the store's rule, naming the field, before
// anything reads it as JSON.
func TestBuildRefusesAPayloadThatIsNotJSONBeforeReadingIt(t *testing.T) {
	s := &Service{Funcs: funcs{}}
	for _, c := range []struct {
		field string
		r     Request
	}{
		{"args", Request{Func: "m.f", Args: json.RawMessage(`[1, "x`)}},
		{"args", Request{Func: "m.f", Args: json.RawMessage(`[1,`)}},
		{"kwargs", Request{Func: "m.f", Kwargs: json.RawMessage(`{"a": }`)}},
		{"context", Request{Func: "m.f", Context: json.RawMessage(`{"user": "\xff"}`)}},
		{"jobs[1].args", Request{Func: "m.f", Args: json.RawMessage(`[[]`)}},
	} {
		reqs, batch := []Request{c.r}, false
		if strings.HasPrefix(c.field, "jobs[") {
			reqs, batch = []Request{{Func: "m.f"}, c.r}, true
		}
		_, err := s.Build(t.Context(), "t", reqs, batch)
		var fe *abi.FieldError
		if !errors.As(err, &fe) || fe.Field != c.field || !errors.Is(err, abi.ErrInvalid) {
			t.Errorf("%s %s: %v, want a refusal naming %s", c.field, c.r.Args, err, c.field)
		}
	}
}
