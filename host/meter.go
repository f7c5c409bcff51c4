package host

import (
	"context"
	"fmt"

	"github.com/tetratelabs/wazero/api"
	"github.com/wasmq/wasmq/abi"
)

// Metering: what an attempt used (abi.Usage).
//
// Fuel is read from the countdown instrument adds: every function entry
// and loop header decrements the counter global, and when it reaches zero
// the guest sets it back to checkEvery and calls checkGuest. The host sets
// the counter at the start of a call and counts what it grants at each
// check, so the fuel used is what was granted minus what is left. That
// costs two global accesses a call and a few additions a check, nothing
// per instruction. max_fuel is exact: when less than checkEvery is left,
// the check grants only the rest, so the next check falls on max_fuel
// itself, whatever the instance ran before (pooled or fresh).

// maxFuelLimit bounds max_fuel (and fuel sums stay far from overflow).
const maxFuelLimit = 1 << 50

// meter is one call's usage counters (a field of call).
type meter struct {
	off bool
	// granted is the fuel given to the counter since the call started;
	// max is the function's max_fuel (0: none).
	granted, max int64
	fuel         int64
	hostCalls    int64
	httpRequests int64
	httpOut      int64
	httpIn       int64
}

// withoutMetering turns the counting off, for the benchmark that measures
// what it costs.
func withoutMetering() Option { return func(o *options) { o.noMeter = true } }

// startMeter readies c's counters before the call on in.
func (c *call) startMeter(in *instance, off bool, maxFuel int64) {
	c.meter = meter{off: off, max: maxFuel}
	if off || in.fuel == nil {
		return
	}
	first := int64(checkEvery)
	if maxFuel > 0 && maxFuel < first {
		first = maxFuel
	}
	in.fuel.Set(uint64(uint32(int32(first))))
	c.meter.granted = first
}

// stopMeter reads the fuel the call used.
func (c *call) stopMeter(in *instance) {
	if c.meter.off || in.fuel == nil {
		return
	}
	c.meter.fuel = c.meter.granted - int64(int32(uint32(in.fuel.Get())))
}

// usage is the attempt's abi.Usage (wall time is Run's).
func (c *call) usage(in *instance) abi.Usage {
	u := abi.Usage{
		Fuel:         c.meter.fuel,
		HostCalls:    c.meter.hostCalls,
		HTTPRequests: c.meter.httpRequests,
		HTTPBytesOut: c.meter.httpOut,
		HTTPBytesIn:  c.meter.httpIn,
	}
	if in.mem != nil {
		u.PeakMemory = int64(in.mem.size())
	}
	return u
}

// meterCheck is run at every check of the countdown, before the deadline
// is looked at: the counter just reached zero, so all that was granted is
// used. It ends the call at max_fuel, or grants the next round.
func meterCheck(ctx context.Context) {
	in := instanceOf(ctx)
	if in == nil || in.call == nil || in.fuel == nil || in.call.meter.off {
		return
	}
	m := &in.call.meter
	if m.max > 0 && m.granted >= m.max {
		in.fuel.Set(0) // nothing left: stopMeter reads granted
		in.call.stop(abi.ExcFuelExhausted, fmt.Sprintf("used its max_fuel of %d", m.max))
	}
	next := int64(checkEvery)
	if m.max > 0 && m.max-m.granted < next {
		next = m.max - m.granted
		in.fuel.Set(uint64(uint32(int32(next))))
	}
	m.granted += next
}

// fuelGlobal is the instrumented counter of mod (nil for a module the
// host did not instrument).
func fuelGlobal(mod api.Module) api.MutableGlobal {
	g, _ := mod.ExportedGlobal(fuelExport).(api.MutableGlobal)
	return g
}

// kernelPrimitives are the host functions a guest calls per byte or per
// block: not counted as host calls, they would drown the number (and
// cost time).
var kernelPrimitives = map[string]bool{
	"alloc": true, "free": true, "length": true, "length_unsafe": true,
	"load_u8": true, "load_u64": true, "store_u8": true, "store_u64": true,
	"input_length": true, "input_offset": true, "input_load_u8": true, "input_load_u64": true, "input_set": true,
	"output_set": true, "output_length": true, "output_offset": true,
}

// counted wraps every function of fns but the kernel primitives so that
// it counts as a host call of the attempt.
func counted(fns []hostFn, off bool) []hostFn {
	if off {
		return fns
	}
	for i := range fns {
		if kernelPrimitives[fns[i].name] {
			continue
		}
		fn := fns[i].fn
		fns[i].fn = func(ctx context.Context, m api.Module, s []uint64) {
			if in := instanceOf(ctx); in != nil && in.call != nil {
				in.call.meter.hostCalls++
			}
			fn(ctx, m, s)
		}
	}
	return fns
}
