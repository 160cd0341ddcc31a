package track

import (
	"fmt"
	"math"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tcptrace/tcptrace/internal/events"
)

// A TIME_WAIT socket whose full socket is gone is kept as a record, and
// goes on from there as it would have as a full socket.
func TestTimewaitKeptAsRecord(t *testing.T) {
	tr := New(Options{})
	for _, ev := range activeClose().evs {
		tr.Process(ev)
	}
	if e := tr.sockets[1]; e == nil || e.full != nil || tr.Tracked() != 1 {
		t.Fatalf("tracked %d, cookie 1 %+v: want it kept as a record", tr.Tracked(), e)
	}
	out := tr.Process(&events.TimewaitTimer{Header: hdr(60150, 1, client, server, 0), Action: events.TimerExpire,
		Substate: events.StateTimeWait})
	sum := only[*events.Summary](t, out)
	want := "SYN_SENT 1ms > ESTABLISHED 100ms > FIN_WAIT1 1ms > FIN_WAIT2 48ms > tw:TIME_WAIT 1m0s"
	if got := history(sum); got != want || sum.Owner.PID != 10 || sum.ClosedBy != "local" {
		t.Errorf("summary %+v, history %s\nwant history %s, owner 10, closed by local", sum, got, want)
	}
	if tr.Tracked() != 0 || len(tr.owners) != 0 {
		t.Errorf("tracked %d, %d owners shared, want none", tr.Tracked(), len(tr.owners))
	}
}

// timewaitSocket is a socket whose full socket is gone, with every field a
// record keeps set, at times in loc.
func timewaitSocket(local, remote string, loc *time.Location) *socket {
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond).In(loc) }
	h := events.Header{Cookie: 3, Family: 6, Netns: 9, Local: netip.MustParseAddrPort(local),
		Remote: netip.MustParseAddrPort(remote), Owner: events.Owner{PID: 4, Comm: "srv", CgroupID: 5}}
	if h.Local.Addr().Is4() {
		h.Family = 4
	}
	s := &socket{header: h, closedBy: "peer", retransmits: 2, resetsSent: 1,
		resetsRecv: 7, beforeTrace: true, historyDropped: true, incomplete: true, fullGone: true,
		handshake: nonZero[events.Handshake](), handshakeKnown: true, counters: nonZero[events.Counters](), countersKnown: true,
		born: true, bornAt: at(-6), destroyedFull: true, fullEnd: at(0).Add(3 * time.Microsecond),
		closing: closing{rstSent: &events.ResetSent{Header: h}, rstReceived: &events.ResetReceived{Header: h},
			timeout: &events.TimeoutAbort{Header: h}, peerFIN: at(-1), peerFINState: events.StateFinWait2,
			moveWithin: time.Millisecond, remoteZeroed: true, options: nonZero[events.CloseOptions]()},
		phases: []events.Phase{
			{State: events.StateEstablished, Duration: 3 * time.Second}, // start unknown
			{State: events.StateCloseWait, Start: at(-5), Duration: time.Millisecond, DurationKnown: true},
			{State: events.StateLastAck, Start: at(-4), Duration: 3 * time.Millisecond, DurationKnown: true},
			{State: events.StateFinWait2, Start: at(-2), Timewait: true, Duration: -time.Millisecond},
			{State: events.StateTimeWait, Start: at(0), Timewait: true},
		}}
	s.twSpace = timewait{start: at(-2), startSeen: true, substate: events.StateTimeWait, header: h,
		timewaitSeen: timewaitSeen{synVerdictAt: at(1), rstAnswerAt: at(2), rstAnswerReason: "NOT_SPECIFIED",
			lastSegment: &events.TimewaitSegment{Header: h, Verdict: "ACK"}, peerLastAck: lastAck{enter: at(-3), leave: at(-1)}}}
	s.twSpace.header.Owner, s.twSpace.header.Time = events.Owner{}, at(-2) // not kept: never told
	s.tw = &s.twSpace
	return s
}

// nonZero is a T with every field set, each to another value.
func nonZero[T any]() T {
	var v T
	fields := reflect.ValueOf(&v).Elem()
	for i := range fields.NumField() {
		switch f := fields.Field(i); f.Kind() {
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			f.SetInt(int64(i + 2))
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			f.SetUint(uint64(i + 2))
		default:
			panic("nonZero: a field of kind " + f.Kind().String())
		}
	}
	return v
}

// track makes s tracked by tr, as lookup would have.
func (tr *Tracker) track(s *socket) {
	e := tr.newTracked()
	e.cookie, e.full, s.entry = s.header.Cookie, s, e
	tr.sockets[e.cookie] = e
	tr.pushNewest(e)
	tr.indexTimewait(tupleOf(s.tw.header), e.cookie)
}

// A record turns back into the socket it was made of, for every address
// family and time location, and with parts unknown.
func TestRecordRoundTrip(t *testing.T) {
	unknown := func(s *socket) {
		s.header.Owner, s.tw.header.Owner = events.Owner{}, events.Owner{}
		s.tw.start, s.tw.startSeen, s.tw.timewaitSeen = time.Time{}, false, timewaitSeen{}
		s.phases = s.phases[:0]
		s.retransmits, s.resetsSent, s.resetsRecv = 0, 0, 0
		s.handshake, s.handshakeKnown, s.counters, s.countersKnown = events.Handshake{}, false, events.Counters{}, false
		s.born, s.bornAt, s.destroyedFull, s.fullEnd = false, time.Time{}, false, time.Time{}
		s.closing = closing{}
	}
	// The kernel's RTTs, in whole microseconds.
	kernelRTTs := func(s *socket) {
		s.handshake.RTT, s.counters.RTT, s.counters.MinRTT = 12345*time.Microsecond, 13*time.Millisecond, -time.Microsecond
	}
	tests := []struct {
		name          string
		local, remote string
		loc           *time.Location
		change        func(*socket)
	}{
		{"IPv4, UTC", "10.0.0.2:80", "10.0.0.1:40000", time.UTC, nil},
		{"IPv6, a zone's time", "[2001:db8::2]:80", "[2001:db8::1]:40000", time.FixedZone("UTC+1", 3600), kernelRTTs},
		{"IPv4-mapped IPv6, local time", "[::ffff:10.0.0.2]:80", "[::ffff:10.0.0.1]:40000", time.Local, nil},
		{"nothing known but its 4-tuple", "10.0.0.2:80", "10.0.0.1:40000", time.UTC, unknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := New(Options{})
			s := timewaitSocket(tt.local, tt.remote, tt.loc)
			if tt.change != nil {
				tt.change(s)
			}
			want := *s
			want.phases = slices.Clone(s.phases)
			want.tw = &want.twSpace
			tr.track(s)
			tr.compact(s)
			e := tr.sockets[3]
			if e.full != nil {
				t.Fatal("not kept as a record")
			}
			got := tr.full(3)
			if got.entry != e || e.full != got || tr.lru.next != e {
				t.Error("not in the record's place among the tracked")
			}
			got.entry = nil
			want.twSpace.header.Owner, want.twSpace.header.Time = got.twSpace.header.Owner, got.twSpace.header.Time
			if !reflect.DeepEqual(*got, want) {
				t.Errorf("got  %+v\nwant %+v", *got, want)
			}
			if got.tw != &got.twSpace {
				t.Error("its TIME_WAIT socket is not in its space")
			}
		})
	}
}

// What a record cannot hold exactly stays a full socket.
func TestNoRecord(t *testing.T) {
	tests := []struct {
		name   string
		change func(*socket)
	}{
		{"a monotonic clock reading", func(s *socket) { s.phases[1].Start = time.Now() }},
		{"times in two locations", func(s *socket) { s.phases[2].Start = s.phases[2].Start.In(time.FixedZone("", 60)) }},
		{"an address with a zone", func(s *socket) {
			s.header.Local = netip.MustParseAddrPort("[fe80::1%eth0]:80")
			s.tw.header.Local = s.header.Local
		}},
		{"its TIME_WAIT socket on another 4-tuple", func(s *socket) { s.header.Remote = netip.MustParseAddrPort("10.0.0.3:1") }},
		{"its timer started apart from its TIME_WAIT phases", func(s *socket) { s.tw.start = s.tw.start.Add(1) }},
		{"its timer stopped, the cause not known yet", func(s *socket) { s.tw.stopped = t0 }},
		{"its full socket still there", func(s *socket) { s.fullGone = false }},
		{"a handshake not known", func(s *socket) { s.handshakeKnown = false }},
		{"a duration of centuries", func(s *socket) { s.counters.RTT = math.MaxInt64 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := New(Options{})
			s := timewaitSocket("10.0.0.2:80", "10.0.0.1:40000", time.UTC)
			tt.change(s)
			tr.track(s)
			tr.compact(s)
			if e := tr.sockets[3]; e.full != s {
				t.Errorf("tracked as %+v, want it full", e)
			}
		})
	}
}

// A socket's fields are each kept by its record, or of no more use once
// only its TIME_WAIT socket lives, or keep it full while they hold
// anything: a field added to socket or timewait has to be told apart here
// (and kept in compact and expand if it is).
func TestRecordKeepsWhatItMust(t *testing.T) {
	for _, tt := range []struct {
		of                      any
		kept, dropped, refusing []string
	}{
		{socket{}, []string{"entry", "header", "phases", "closedBy", "retransmits", "resetsSent", "resetsRecv",
			"beforeTrace", "historyDropped", "incomplete", "tw", "twSpace", "fullGone", "born", "destroyedFull",
			"bornAt", "fullEnd", "handshake", "counters", "handshakeKnown", "countersKnown", "closing"},
			// Its overflow's evidence (with a TIME_WAIT socket there was
			// none), its last RST and bound port, how it ended as a full
			// socket: all the full socket's.
			[]string{"overflowFrom", "overflowAt", "overflowSeen", "destroyedAt", "synSentPort", "lastReset", "end"},
			// Its timers likewise, but a zero-window episode still to tell.
			[]string{"timers"}},
		// Its cancel and what it last held count while it is stopped.
		{timewait{}, []string{"start", "startSeen", "substate", "header", "timewaitSeen"},
			[]string{"last", "cancel"}, []string{"stopped", "peerRST"}},
		{closing{}, []string{"rstSent", "rstReceived", "timeout", "peerFIN", "peerFINState", "moveWithin",
			"remoteZeroed", "options"}, nil, nil},
		{timewaitSeen{}, []string{"synVerdictAt", "lastSegment", "rstAnswerAt", "rstAnswerReason", "peerLastAck"}, nil, nil},
	} {
		var fields []string
		for f := range reflect.TypeOf(tt.of).Fields() {
			fields = append(fields, f.Name)
		}
		if told := slices.Concat(tt.kept, tt.dropped, tt.refusing); !sameSet(fields, told) {
			t.Errorf("%T has fields %v, told apart %v", tt.of, fields, told)
		}
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b))
	return slices.Equal(a, b)
}

// A TIME_WAIT socket is found by its 4-tuple, kept as a record or not,
// however the tuples' hashes fall: every one the same, the others kept whole.
func TestTimewaitIndexCollisions(t *testing.T) {
	peer := func(s *stream) *stream {
		// The server's side of another connection closes, and its RST for
		// no socket reaches the client's TIME_WAIT socket.
		return s.state(hdr(2000, 2, server, "10.0.0.1:40001", 20), events.StateCloseWait, events.StateLastAck).
			state(hdr(2001, 2, server, "10.0.0.1:40001", 20), events.StateLastAck, events.StateClose).
			add(&events.ResetSent{Header: hdr(2500, 0, server, client, 0), State: events.StateListen, Reason: "TCP_FLAGS"}).
			timer(hdr(60150, 1, client, server, 0), events.TimerExpire, events.StateTimeWait, 0)
	}
	streams := map[string]*stream{
		"one TIME_WAIT socket":      peer(activeClose()),
		"with another on a 4-tuple": peer(activeClose().add(&events.Snapshot{Header: hdr(1, 7, "10.0.0.1:40001", server, 0), State: events.StateTimeWait, Substate: events.StateFinWait2})),
	}
	for name, s := range streams {
		t.Run(name, func(t *testing.T) {
			want := run(New(Options{}), s.evs, t0.Add(time.Hour))
			colliding := New(Options{})
			colliding.byTuple.hash = func(tuple) uint64 { return 1 }
			if got := run(colliding, s.evs, t0.Add(time.Hour)); !reflect.DeepEqual(got, want) {
				t.Errorf("with every hash the same:\n%s\nwant\n%s", eventList(got), eventList(want))
			}
			only[*events.TimewaitRSTIgnored](t, want)
		})
	}
}

func eventList(evs []events.Event) string {
	var b strings.Builder
	for _, ev := range evs {
		fmt.Fprintf(&b, "%T %+v\n", ev, ev)
	}
	return b.String()
}
