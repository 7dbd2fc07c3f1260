//go:build linux

package main

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/wacampaign/wacampaign/internal/harness"
)

// workerPool keeps a fixed number of campaign-worker processes running: a
// worker the harness kills is started again at once, and one that exits on
// its own (a crash: the product's fault) is noted and started again after a
// second. Slot i always logs to worker-i.log, across restarts.
type workerPool struct {
	start func(name string) (*harness.Child, error)

	mu      sync.Mutex
	slots   []*harness.Child
	kills   int
	starts  int
	crashes []string // how each crashed worker ended
	failed  []string // restarts that did not work

	quit chan struct{}
	done chan struct{}
}

// startPool starts n workers with start and watches them until stop.
func startPool(n int, start func(name string) (*harness.Child, error)) (*workerPool, error) {
	p := &workerPool{start: start, slots: make([]*harness.Child, n), quit: make(chan struct{}), done: make(chan struct{})}
	for i := range p.slots {
		if err := p.restart(i); err != nil {
			p.stopWorkers()
			return nil, err
		}
	}
	go p.watch()
	return p, nil
}

func slotName(i int) string { return fmt.Sprintf("worker-%d", i+1) }

// restart starts slot i's worker (again). The caller holds no lock.
func (p *workerPool) restart(i int) error {
	c, err := p.start(slotName(i))
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		p.failed = append(p.failed, fmt.Sprintf("%s: %v", slotName(i), err))
		p.slots[i] = nil // watch tries again
		return err
	}
	p.slots[i] = c
	p.starts++
	return nil
}

// watch restarts crashed workers until stop.
func (p *workerPool) watch() {
	defer close(p.done)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-p.quit:
			return
		case <-tick.C:
		}
		for i := range p.slots {
			p.mu.Lock()
			c := p.slots[i]
			crashed := c == nil || c.Crashed()
			if c != nil && crashed {
				p.crashes = append(p.crashes, harness.Clip(c.ExitError().Error(), 300))
				p.slots[i] = nil
			}
			p.mu.Unlock()
			if crashed {
				time.Sleep(time.Second)
				_ = p.restart(i) // a failure is noted; the next tick tries again
			}
		}
	}
}

// killOne sends SIGKILL to a worker drawn at random and starts a new one in
// its slot at once, so the pool keeps its size. It answers the slot's name.
func (p *workerPool) killOne(rng *rand.Rand) string {
	i := rng.IntN(len(p.slots))
	p.mu.Lock()
	c := p.slots[i]
	p.mu.Unlock()
	if c == nil {
		return "" // being restarted after a crash
	}
	c.Kill()
	p.mu.Lock()
	p.kills++
	p.mu.Unlock()
	_ = p.restart(i)
	return slotName(i)
}

// stop ends the watching and stops every worker with SIGTERM (the product's
// graceful stop), together.
func (p *workerPool) stop() {
	close(p.quit)
	<-p.done
	p.stopWorkers()
}

func (p *workerPool) stopWorkers() {
	p.mu.Lock()
	slots := append([]*harness.Child(nil), p.slots...)
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range slots {
		if c != nil {
			wg.Add(1)
			go func() { defer wg.Done(); c.Stop(15 * time.Second) }()
		}
	}
	wg.Wait()
}

// summary says what happened to the workers.
func (p *workerPool) summary() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	lines := []string{fmt.Sprintf("%d workers; %d killed with SIGKILL and restarted; %d worker starts in all; %d crashed on their own",
		len(p.slots), p.kills, p.starts, len(p.crashes))}
	for _, c := range p.crashes {
		lines = append(lines, "crash: "+c)
	}
	for _, f := range p.failed {
		lines = append(lines, "restart failed: "+f)
	}
	return lines
}
