package schedule_test

import (
	"fmt"
	"time"

	"github.com/wasmq/wasmq/schedule"
)

// A schedule's cron expression is read in its time zone, as Vixie cron
// reads it: "every day at 02:30" in Brussels fires at the jump (03:00)
// the night the clocks go forward, when 02:30 does not exist, and at 02:30
// again the next day. Bad input names the field.
func ExampleParseSpec() {
	spec, err := schedule.ParseSpec("30 2 * * *", "Europe/Brussels")
	if err != nil {
		panic(err)
	}
	brussels, _ := time.LoadLocation("Europe/Brussels")
	from := time.Date(2027, 3, 26, 12, 0, 0, 0, time.UTC)
	for _, t := range spec.NextN(from, 3) {
		fmt.Println(t.In(brussels).Format("Mon 2006-01-02 15:04 MST"))
	}
	for _, bad := range [][2]string{{"61 * * * *", "UTC"}, {"@daily", "Mars/Olympus"}} {
		_, err := schedule.ParseSpec(bad[0], bad[1])
		fmt.Println(err)
	}
	// Output:
	// Sat 2027-03-27 02:30 CET
	// Sun 2027-03-28 03:00 CEST
	// Mon 2027-03-29 02:30 CEST
	// cron: "61 * * * *" is not a cron expression: end of range (61) above maximum (59): 61
	// timezone: "Mars/Olympus" is not an IANA time zone (e.g. UTC, Europe/Brussels)
}
