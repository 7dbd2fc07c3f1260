package campaign

import (
	"testing"
	"time"
)

func TestDecodeHistory(t *testing.T) {
	created := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	stored := "g1500:+14155550100;q1600:provider rate limit;g2500:+14155550100;s2700:uid-1;P61000:Sent;P65000:Delivered;P65000:Pending;P90000:Read;P95000:Delivered;x1:junk;s"
	h := decodeHistory(stored, created)
	want := []struct {
		state    State
		provider string
		ms       int
		detail   string
	}{
		{StateQueued, "", 0, ""},
		{StateSending, "", 1500, "+14155550100"},
		{StateQueued, "", 1600, "provider rate limit"},
		{StateSending, "", 2500, "+14155550100"},
		{StateSent, "", 2700, "uid-1"},
		{StateSent, "Sent", 61000, ""},
		{StateDelivered, "Delivered", 65000, ""},
		{StateDelivered, "Pending", 65000, ""}, // a word that moves nothing is kept
		{StateRead, "Read", 90000, ""},
		{StateRead, "Delivered", 95000, ""}, // never backwards
	}
	if len(h) != len(want) {
		t.Fatalf("%d entries: %+v", len(h), h)
	}
	for i, w := range want {
		e := h[i]
		if e.State != w.state || e.ProviderStatus != w.provider || !e.At.Equal(created.Add(time.Duration(w.ms)*time.Millisecond)) || e.Detail != w.detail {
			t.Errorf("entry %d: %+v, want %+v", i, e, w)
		}
	}
	if got := FirstAt(h, StateDelivered); !got.Equal(created.Add(65 * time.Second)) {
		t.Errorf("delivered at %v", got)
	}
	if got := FirstAt(h, StateSent); !got.Equal(created.Add(2700 * time.Millisecond)) {
		t.Errorf("sent at %v: want the provider's acceptance, not its Sent report", got)
	}
}

func TestPollScheduleWidensThenStopsAtMaxAge(t *testing.T) {
	s := PollSchedule{Delays: []time.Duration{time.Minute, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 12 * time.Hour}, MaxAge: 48 * time.Hour}
	sent := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	var got []time.Duration
	for n := 0; ; n++ {
		at, ok := s.at(sent, n)
		if !ok {
			break
		}
		got = append(got, at.Sub(sent))
	}
	want := []time.Duration{time.Minute, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 12 * time.Hour, 22 * time.Hour, 32 * time.Hour, 42 * time.Hour}
	if len(got) != len(want) {
		t.Fatalf("polls at %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("poll %d at %s, want %s", i, got[i], want[i])
		}
	}
}

func TestProviderWords(t *testing.T) {
	for word, want := range map[string]State{"Sent": StateSent, "DELIVERED": StateDelivered, " read ": StateRead, "Failed": StateFailed, "Pending": "", "Queued": "", "Whatever": ""} {
		if got := ProviderState(word); got != want {
			t.Errorf("%q → %q, want %q", word, got, want)
		}
	}
}
