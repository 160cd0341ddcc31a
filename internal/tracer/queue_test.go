//go:build linux

package tracer

import (
	"bytes"
	"testing"
	"time"
)

func TestQueueOrderAndBound(t *testing.T) {
	q := newQueue(10) // bytes: a second batch of 8 waits for the first to be done
	q.add([]byte("abcd"))
	q.add([]byte("efgh"))
	first := time.Unix(1, 0)
	q.send(first, 0)
	sent := make(chan struct{})
	go func() {
		q.add([]byte("ijklmnop"))
		q.send(time.Unix(2, 0), 3)
		q.close()
		close(sent)
	}()
	select {
	case <-sent:
		t.Fatal("the second batch went past the bound while the first was queued")
	case <-time.After(50 * time.Millisecond):
	}
	b := <-q.ch
	if string(b.recs) != "abcdefgh" || !b.at.Equal(first) {
		t.Fatalf("first batch %q at %v", b.recs, b.at)
	}
	q.done(b)
	<-sent
	b = <-q.ch
	if !bytes.Equal(b.recs, []byte("ijklmnop")) || b.lost != 3 {
		t.Fatalf("second batch %q, lost %d", b.recs, b.lost)
	}
	q.done(b)
	if _, ok := <-q.ch; ok || q.bytes.Load() != 0 || q.peak.Load() != 16 {
		t.Errorf("after both: open %v, %d bytes queued, peak %d (want closed, 0, 16)", ok, q.bytes.Load(), q.peak.Load())
	}
}
