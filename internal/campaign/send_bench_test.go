package campaign

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wacampaign/wacampaign/internal/quota"
	"github.com/wacampaign/wacampaign/internal/sender/sandbox"
)

// BenchmarkSendPath runs the send handler from 32 goroutines against a
// throwaway Redis and the sandbox, with pacing off: the cost of the send
// path itself, without asynq's dequeueing (make bench measures that too).
func BenchmarkSendPath(b *testing.B) {
	f := newFixture(b, sandbox.Config{Credits: 1 << 40})
	f.handler.pacer = quota.NewPacer(f.rdb, 0, 0)
	f.handler.queue = f.queue
	f.handler.polls = PollSchedule{Delays: []time.Duration{time.Minute}}
	var csv strings.Builder
	csv.WriteString("phone,name\n")
	for i := 0; i < b.N; i++ {
		fmt.Fprintf(&csv, "+1%03d55501%02d,Person %d\n", []int{202, 212, 312, 415, 617, 713, 206, 305, 404, 503}[i/100%10], i%100, i)
	}
	b.StopTimer()
	c := f.importCSV("Hi {{.name}}", csv.String())
	b.StartTimer()
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				seq := next.Add(1) - 1
				if seq >= c.Counts.Total {
					return
				}
				if err := f.handler.ProcessTask(context.Background(), f.task(c.ID, seq)); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	if got := int64(len(f.sandbox.Messages())); got != c.Counts.Total {
		b.Fatalf("the sandbox got %d messages of %d", got, c.Counts.Total)
	}
}
