package tree

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
)

// defaultWorkers is enough to keep a disk's queue busy with the small files
// of a Maildir (most of the time goes to open, fstat and fsync, not to
// moving bytes), and small enough not to starve a shared machine.
func defaultWorkers() int {
	return max(4, 2*runtime.GOMAXPROCS(0))
}

// maxErrors is how many per-entry errors a walk keeps; past that it counts.
const maxErrors = 20

// jobs runs functions on a fixed number of goroutines; a function may add
// more. wait returns when the queue is empty and nothing runs.
type jobs struct {
	ctx      context.Context
	failFast bool

	mu     sync.Mutex
	cond   sync.Cond
	queue  []func() error
	active int
	errs   []error
	more   int
	done   bool
}

func newJobs(ctx context.Context, failFast bool) *jobs {
	j := &jobs{ctx: ctx, failFast: failFast}
	j.cond.L = &j.mu
	return j
}

// add queues f. After a failure with failFast, or once the context is
// done, new work is dropped.
func (j *jobs) add(f func() error) {
	j.mu.Lock()
	if !j.done {
		j.queue = append(j.queue, f)
	}
	j.mu.Unlock()
	j.cond.Signal()
}

// stopped reports whether new work is being dropped (a failure with
// failFast, or the context done): a long job may end early.
func (j *jobs) stopped() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.done
}

// fail records an error without stopping (the walk goes on).
func (j *jobs) fail(err error) {
	j.mu.Lock()
	j.record(err)
	j.mu.Unlock()
}

func (j *jobs) record(err error) {
	if len(j.errs) < maxErrors {
		j.errs = append(j.errs, err)
	} else {
		j.more++
	}
	if j.failFast {
		j.done = true
		j.queue = nil
	}
}

// run starts n workers and waits for them; it returns the errors of the
// jobs joined (at most maxErrors of them, then a count).
func (j *jobs) run(n int) error {
	var wg sync.WaitGroup
	for range n {
		wg.Go(j.worker)
	}
	wg.Wait()
	errs := j.errs
	if j.more > 0 {
		errs = append(errs, fmt.Errorf("and %d more errors", j.more))
	}
	return errors.Join(errs...)
}

func (j *jobs) worker() {
	j.mu.Lock()
	defer j.mu.Unlock()
	for {
		for len(j.queue) == 0 && j.active > 0 {
			j.cond.Wait()
		}
		if len(j.queue) == 0 {
			j.cond.Broadcast()
			return
		}
		// Last in, first out: a walk goes deep first and the queue stays
		// as short as the tree is deep.
		f := j.queue[len(j.queue)-1]
		j.queue[len(j.queue)-1] = nil
		j.queue = j.queue[:len(j.queue)-1]
		j.active++
		j.mu.Unlock()
		err := j.ctx.Err()
		if err == nil {
			err = f()
		}
		j.mu.Lock()
		j.active--
		if err != nil {
			if ctxErr := j.ctx.Err(); ctxErr != nil && errors.Is(err, ctxErr) {
				if !j.done {
					j.errs = append(j.errs, err)
				}
				j.done = true
				j.queue = nil
			} else {
				j.record(err)
			}
		}
		j.cond.Broadcast()
	}
}
