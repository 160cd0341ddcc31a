//go:build linux

package tracer

import (
	"sync"
	"sync/atomic"
	"time"
)

// DefaultQueueBytes bounds the records read from the ring but not yet
// tracked and written: a slow disk or pipe delays the output by up to this
// much before the reader stops reading and the ring, then the kernel, drops.
const DefaultQueueBytes = 256 << 20

// batch is what the reader took from the ring between two polls.
type batch struct {
	recs []byte    // whole records, back to back
	at   time.Time // the poll that ended it
	lost uint64    // records the kernel had dropped by then
}

// queue hands batches from the ring's reader to the goroutine that tracks,
// renders and records them, so that reading never waits on the output
// (and the two run on two cores). Bounded in bytes: once full, the reader
// waits, and what the kernel cannot put in the ring meanwhile is lost and
// counted there.
type queue struct {
	ch      chan *batch
	max     int64
	bytes   atomic.Int64 // queued now
	peak    atomic.Int64 // most queued at once
	free    sync.Pool    // spent batches' buffers
	cur     *batch       // the reader's
	closing chan struct{}
}

func newQueue(maxBytes int64) *queue {
	q := &queue{ch: make(chan *batch, 1024), max: maxBytes, closing: make(chan struct{})}
	q.cur = q.newBatch()
	return q
}

func (q *queue) newBatch() *batch {
	if b, ok := q.free.Get().(*batch); ok {
		b.recs = b.recs[:0]
		return b
	}
	return &batch{recs: make([]byte, 0, 64<<10)}
}

// add copies one record into the batch being filled (reader side).
func (q *queue) add(rec []byte) {
	q.cur.recs = append(q.cur.recs, rec...)
}

// send ends the batch being filled at a poll and queues it (reader side),
// waiting while the queue is full.
func (q *queue) send(at time.Time, lost uint64) {
	b := q.cur
	b.at, b.lost = at, lost
	n := q.bytes.Add(int64(len(b.recs)))
	if n > q.peak.Load() {
		q.peak.Store(n)
	}
	for q.bytes.Load() > q.max && len(q.ch) > 0 {
		select {
		case <-q.closing:
			return
		case <-time.After(time.Millisecond):
		}
	}
	select {
	case q.ch <- b:
	case <-q.closing:
		return
	}
	q.cur = q.newBatch()
}

// close tells the taker no batch follows (reader side).
func (q *queue) close() { close(q.ch) }

// done gives back a batch the taker has handled.
func (q *queue) done(b *batch) {
	q.bytes.Add(-int64(len(b.recs)))
	q.free.Put(b)
}

// abandon stops a reader waiting on a taker that has failed.
func (q *queue) abandon() { close(q.closing) }
