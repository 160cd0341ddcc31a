package flow

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"
)

// trace is a sink writing down what it is given.
type trace struct {
	name string
	log  *[]string
	fail string // the call that fails
}

func (t trace) note(call string) error {
	*t.log = append(*t.log, t.name+" "+call)
	if call == t.fail {
		return errors.New(t.name + " failed")
	}
	return nil
}

func (t trace) Record(rec []byte) error  { return t.note("record " + string(rec)) }
func (t trace) Lost(total uint64) error  { return t.note(fmt.Sprint("lost ", total)) }
func (t trace) Poll(now time.Time) error { return t.note(fmt.Sprint("poll ", now.Unix())) }
func (t trace) End(end End) error        { return t.note(fmt.Sprint("end ", end.At.Unix())) }

func TestChainInOrder(t *testing.T) {
	var log []string
	c := Chain{trace{name: "a", log: &log}, trace{name: "b", log: &log}}
	c.Record([]byte("r1"))
	c.Lost(3)
	c.Poll(time.Unix(10, 0))
	c.End(End{At: time.Unix(11, 0)})
	want := []string{"a record r1", "b record r1", "a lost 3", "b lost 3", "a poll 10", "b poll 10", "a end 11", "b end 11"}
	if !reflect.DeepEqual(log, want) {
		t.Errorf("got %q, want %q", log, want)
	}
}

func TestChainStopsAtError(t *testing.T) {
	var log []string
	c := Chain{trace{name: "a", log: &log, fail: "poll 10"}, trace{name: "b", log: &log}}
	if err := c.Poll(time.Unix(10, 0)); err == nil || err.Error() != "a failed" {
		t.Fatalf("error %v, want a's", err)
	}
	if len(log) != 1 {
		t.Errorf("sinks after the failing one were called: %q", log)
	}
}

func TestLossesTellGrowthOnly(t *testing.T) {
	var log []string
	sink := trace{name: "s", log: &log}
	var l Losses
	for _, total := range []uint64{0, 2, 2, 5, 4} {
		if err := l.Update(sink, total); err != nil {
			t.Fatal(err)
		}
	}
	if want := []string{"s lost 2", "s lost 5"}; !reflect.DeepEqual(log, want) {
		t.Errorf("got %q, want %q", log, want)
	}
}
