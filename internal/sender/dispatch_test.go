package sender_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/wacampaign/wacampaign/internal/sender"
	"github.com/wacampaign/wacampaign/internal/sender/sandbox"
)

// eventLog records what happened, in order, from several goroutines.
type eventLog struct {
	mu     sync.Mutex
	events []string
}

func (l *eventLog) add(event string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, event)
}

func (l *eventLog) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.events...)
}

// loggingLimiter logs the end of each wait.
type loggingLimiter struct{ log *eventLog }

func (l loggingLimiter) Wait(context.Context) error {
	l.log.add("limiter waited")
	return nil
}

type ctxKey struct{}

func TestBeforeDispatchRunsBetweenTheLimiterAndTheWrite(t *testing.T) {
	log := &eventLog{}
	f := newFixture(t, sandbox.Config{Credits: 10}, sender.WithCallLimiter(loggingLimiter{log}))
	var seenAtHook struct {
		apiCalls int64
		value    any
	}
	ctx := context.WithValue(context.Background(), ctxKey{}, "the caller's")
	ctx = sender.BeforeDispatch(ctx, func(hookCtx context.Context) error {
		log.add("hook")
		seenAtHook.apiCalls = f.box.APICallsUsed()
		seenAtHook.value = hookCtx.Value(ctxKey{})
		return nil
	})

	receipt, err := f.client.Send(ctx, sender.Message{Phone: "+14155550100", Text: "hi"})
	if err != nil {
		t.Fatal(err)
	}
	if got := log.list(); len(got) != 2 || got[0] != "limiter waited" || got[1] != "hook" {
		t.Errorf("events %v, want the limiter's wait, then the hook", got)
	}
	if seenAtHook.apiCalls != 0 {
		t.Errorf("the sandbox had received %d requests when the hook ran, want 0", seenAtHook.apiCalls)
	}
	if seenAtHook.value != "the caller's" {
		t.Errorf("the hook's context lacks the caller's values: %v", seenAtHook.value)
	}
	if msgs := f.box.Messages(); len(msgs) != 1 || msgs[0].UID != receipt.MessageUID {
		t.Errorf("sandbox messages %+v, want the one sent", msgs)
	}
}

func TestBeforeDispatchErrorStopsTheSend(t *testing.T) {
	f := newFixture(t, sandbox.Config{Credits: 10})
	recordFailed := errors.New("redis: marking the attempt dispatched failed")
	ctx := sender.BeforeDispatch(context.Background(), func(context.Context) error { return recordFailed })

	_, err := f.client.Send(ctx, sender.Message{Phone: "+14155550100", Text: "hi"})
	pe := providerError(t, err)
	if pe.Kind != sender.Transient || pe.Op != sender.OpSend || pe.HTTPStatus != 0 {
		t.Errorf("got %v Op %q HTTP %d, want Transient send without an answer", pe.Kind, pe.Op, pe.HTTPStatus)
	}
	if !errors.Is(err, recordFailed) {
		t.Errorf("error %v does not wrap the hook's error", err)
	}
	if n, msgs := f.box.APICallsUsed(), f.box.Messages(); n != 0 || len(msgs) != 0 {
		t.Errorf("the sandbox received %d requests and recorded %d messages, want none", n, len(msgs))
	}
}

func TestBeforeDispatchOnlyForSendsThatGoOut(t *testing.T) {
	f := newFixture(t, sandbox.Config{Credits: 10})
	var calls int
	ctx := sender.BeforeDispatch(context.Background(), func(context.Context) error {
		calls++
		return nil
	})

	receipt, err := f.client.Send(ctx, sender.Message{Phone: "+14155550100", Text: "hi"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.client.StatusHistory(ctx, receipt.MessageUID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.client.Quota(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := f.client.FindSent(ctx, sender.SentQuery{Phone: "+14155550100"}); err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Errorf("hook called %d times for one send, a status poll, a quota read and a lookup; want 1", calls)
	}

	// Refused before the write: no hook.
	if _, err := f.client.Send(ctx, sender.Message{Phone: "+14155550100"}); err == nil {
		t.Fatal("a message without content was sent")
	}
	f.limiter.err = errors.New("ceiling unreachable")
	if _, err := f.client.Send(ctx, sender.Message{Phone: "+14155550100", Text: "hi"}); err == nil {
		t.Fatal("a send the limiter refused went out")
	}
	if calls != 1 {
		t.Errorf("hook called for sends refused before the write (%d calls)", calls)
	}
}

func TestBeforeDispatchThenLostAnswerIsUnconfirmed(t *testing.T) {
	// The flow the hook is for: recorded as dispatched, then no answer.
	f := newFixture(t, sandbox.Config{Credits: 10})
	f.box.Inject(sandbox.Fault{Op: sandbox.OpSend, Process: true, Drop: true})
	var dispatched bool
	ctx := sender.BeforeDispatch(context.Background(), func(context.Context) error {
		dispatched = true
		return nil
	})
	_, err := f.client.Send(ctx, sender.Message{Phone: "+14155550100", Text: "hi"})
	if pe := providerError(t, err); pe.Kind != sender.Unconfirmed || !dispatched {
		t.Errorf("got %v with the hook run %v, want Unconfirmed after the hook", pe.Kind, dispatched)
	}
	if len(f.box.Messages()) != 1 {
		t.Errorf("sandbox recorded %d messages, want the accepted one", len(f.box.Messages()))
	}
}
