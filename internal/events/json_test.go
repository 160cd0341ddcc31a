package events

import (
	"encoding/json"
	"net/netip"
	"testing"
	"time"
)

// The encoder's cached time formatting must match time.Format, across
// seconds, zones and nanosecond values.
func TestJSONTime(t *testing.T) {
	paris := time.FixedZone("CET", 3600)
	base := time.Date(2026, 11, 21, 18, 38, 21, 0, time.UTC)
	times := []time.Time{
		base, base.Add(1), base.Add(999999999), base.Add(time.Second), base.Add(time.Second + 42),
		base.In(paris), base.Add(5).In(paris), base.Add(-time.Hour * 24 * 400),
	}
	var enc JSONEncoder
	for _, tm := range times {
		got := string(enc.appendTime(nil, tm))
		if want := tm.Format(TimeLayout); got != want {
			t.Errorf("%v: got %s, want %s", tm, got, want)
		}
	}
}

func TestJSONValid(t *testing.T) {
	h := Header{Time: time.Unix(1, 2), Cookie: 1, Family: 6,
		Local: netip.MustParseAddrPort("[::ffff:10.0.0.1]:80"), Remote: netip.MustParseAddrPort("[2001:db8::1]:9"),
		Owner: Owner{PID: 1, Comm: "weird\"\x00name\xff"}}
	for _, ev := range []Event{
		&StateChange{Header: h, Old: StateClose, New: StateSynSent, Syn: SynInfo{Seq: 1, SeqKnown: true}},
		&TimewaitEnd{Header: h, Cause: CauseSynAccepted, Inferred: true, InferredFrom: "a \"quoted\" reason",
			Syn: SynInfo{Seq: 5, SeqKnown: true, TSVal: 2, TSValKnown: true}, Last: SynInfo{Seq: 4, SeqKnown: true, TSVal: 1, TSValKnown: true}},
		&Summary{Header: h, History: []Phase{{State: StateEstablished, Duration: time.Millisecond, DurationKnown: true}, {State: StateTimeWait, Timewait: true}}, End: "open"},
		&Finding{Header: h, Kind: "k", Message: "m", Evidence: map[string]any{"x": 1}, Sysctls: map[string]any{"y": nil}},
		&Snapshot{Header: h, State: StateTimeWait, Substate: StateFinWait2, Remaining: time.Second, RemainingKnown: true},
	} {
		b := AppendJSON(nil, ev)
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Errorf("%T: invalid JSON %s: %v", ev, b, err)
		} else if m["type"] != string(ev.Type()) || m["saddr"] != "::ffff:10.0.0.1" {
			t.Errorf("%T: %s", ev, b)
		}
	}
}

func TestAppendMillis(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0", 1500 * time.Millisecond: "1500", 335 * time.Microsecond: "0.335", 42500 * time.Microsecond: "42.5",
		time.Nanosecond: "0", 60 * time.Second: "60000", 1001 * time.Microsecond: "1.001", -2500 * time.Microsecond: "-2.5",
	} {
		if got := string(AppendMillis(nil, d)); got != want {
			t.Errorf("AppendMillis(%v) = %s, want %s", d, got, want)
		}
	}
}
