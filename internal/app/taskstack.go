package app

import (
	"context"

	"github.com/hibiken/asynq"
)

// asynq runs every task in a goroutine of its own, which starts with a
// small stack. A send goes deep (go-redis, net/http, encoding/json), and
// its goroutine grew its stack two or three times per task, each time
// copying every frame: a tenth of a worker's CPU in runtime.newstack under
// make bench's figure 3 (pprof, 2026-11-30). Growing it to 16 KB first
// thing, while the goroutine holds only asynq's few frames, costs one
// small copy instead: newstack fell to under 4 % (32 KB did no better).

// withGrownStack is the middleware that grows a task's stack before it
// runs.
func withGrownStack(next asynq.Handler) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		growStack()
		return next.ProcessTask(ctx, t)
	})
}

// growStack needs a frame of 12 KB, so the runtime grows the stack to
// 16 KB in one step; the frame is written so that the compiler keeps it.
//
//go:noinline
func growStack() {
	var frame [12 << 10]byte
	touchFrame(frame[:])
}

//go:noinline
func touchFrame(b []byte) { b[len(b)-1] = 1 }
