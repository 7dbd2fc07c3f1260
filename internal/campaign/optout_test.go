package campaign

import (
	"context"
	"testing"
	"time"

	"github.com/wacampaign/wacampaign/internal/audience"
	"github.com/wacampaign/wacampaign/internal/sender"
	"github.com/wacampaign/wacampaign/internal/sender/sandbox"
)

// optingOutProvider suppresses a phone as a send to it reaches the
// provider's client, before the client takes the claim: an opt-out that
// comes after every earlier look at the audience, during the waits.
type optingOutProvider struct {
	sender.Provider
	t     *testing.T
	store *audience.Store
	phone string
}

func (p optingOutProvider) Send(ctx context.Context, msg sender.Message) (sender.Receipt, error) {
	if msg.Phone == p.phone {
		if _, err := p.store.Suppress(ctx, audience.Entry{Address: p.phone, Reason: "STOP", Source: audience.SourceKeyword, At: time.Now()}); err != nil {
			p.t.Error(err)
		}
	}
	return p.Provider.Send(ctx, msg)
}

// An opt-out is honoured up to the moment the request would be written:
// the suppression list is read with the claim. With and without a
// frequency cap (whose early look at the audience has passed by then), the
// recipient ends skipped, "opted out", nothing reaches the provider, its
// credits are given back, and its history shows no "sending".
func TestOptOutDuringTheWaitsStopsTheSendAtTheClaim(t *testing.T) {
	for _, tc := range []struct {
		name string
		cap  audience.FrequencyCap
	}{{"uncapped", audience.FrequencyCap{}}, {"capped", audience.FrequencyCap{Messages: 5, Period: time.Hour}}} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, sandbox.Config{})
			aud := audience.NewStore(f.rdb)
			optOut, stays := "+12025550123", "+12025550124"
			deps := f.sendDeps
			deps.Audience = AudienceConfig{Store: aud, Cap: tc.cap}
			deps.Provider = optingOutProvider{Provider: f.client, t: t, store: aud, phone: optOut}
			h := NewSendHandler(deps)

			c := f.importCSV("Hi", "phone\n"+optOut+"\n"+stays+"\n")
			for seq := int64(0); seq < 2; seq++ {
				if err := h.ProcessTask(context.Background(), f.task(c.ID, seq)); err != nil {
					t.Fatalf("recipient %d: %v", seq, err)
				}
			}

			msgs := f.sandbox.Messages()
			if len(msgs) != 1 || msgs[0].Phone != stays {
				t.Fatalf("the sandbox got %+v; want one message, to %s", msgs, stays)
			}
			r := f.recipient(c.ID, 0)
			if r.State != StateSkipped || r.Reason != ReasonOptedOut {
				t.Errorf("the opted-out recipient is %s (%q); want skipped (%q)", r.State, r.Reason, ReasonOptedOut)
			}
			for _, e := range r.History {
				if e.State == StateSending {
					t.Errorf("its history shows a send that was never written: %+v", r.History)
				}
			}
			got := f.get(c.ID)
			if got.Counts.Sent != 1 || got.Counts.Skipped != 1 || !addsUp(got.Counts) || got.Status != StatusCompleted {
				t.Errorf("campaign %s with %+v; want completed, 1 sent, 1 skipped", got.Status, got.Counts)
			}
			if err := f.ledger.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			if b, err := f.ledger.Balance(context.Background()); err != nil || b.Spent != 1 || b.Reserved != 0 {
				t.Errorf("ledger %+v (%v); want 1 credit spent, none reserved", b, err)
			}
		})
	}
}
