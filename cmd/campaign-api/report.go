package main

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/wacampaign/wacampaign/internal/campaign"
	"go.uber.org/zap"
)

// report streams GET /v1/campaigns/{id}/report.csv: one row per recipient in
// upload order, with the CSV's own columns, the final state and reason, the
// message_uid and the times it was sent, delivered and read (and the A/B
// variant of a campaign with variants). A campaign
// whose recipients may be addressed by JID or chat id has key and kind
// beside phone (which is empty for them). It reads and writes a page of
// recipients at a time, so a campaign of any size streams in constant
// memory.
func (s *server) report(w http.ResponseWriter, r *http.Request) {
	c, err := s.store.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		s.campaignError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="campaign-%s.csv"`, c.ID))
	out := csv.NewWriter(w)
	header := []string{"phone"}
	withKey := !slices.Equal(c.KeyColumns, []string{c.PhoneColumn})
	if withKey {
		header = append(header, "key", "kind")
	}
	var others []string // the CSV's columns besides the phone and the keys
	for _, col := range c.Columns {
		if col != c.PhoneColumn && !(withKey && slices.Contains(c.KeyColumns, col)) {
			others = append(others, col)
			header = append(header, col)
		}
	}
	header = append(header, "state", "reason", "message_uid", "account", "sent_at", "delivered_at", "read_at", "replied_at", "opted_out_at")
	withVariant := len(c.Variants) > 0
	if withVariant {
		header = append(header, "variant")
	}
	if err := out.Write(header); err != nil {
		return
	}
	cursor := int64(0)
	for cursor >= 0 {
		page, next, err := s.store.Recipients(r.Context(), c.ID, "", cursor, 1024)
		if err != nil {
			// The status line is gone already: end the file visibly.
			_ = out.Write([]string{"# the report broke off: " + err.Error()})
			out.Flush()
			s.log.Error("report broke off")
			return
		}
		for _, rc := range page {
			row := make([]string, 0, len(header))
			row = append(row, rc.Phone)
			if withKey {
				row = append(row, cell(rc.Key), string(rc.Kind))
			}
			for _, col := range others {
				row = append(row, cell(rc.Fields[col]))
			}
			row = append(row, string(rc.State), cell(rc.Reason), rc.MessageUID, rc.Account,
				stamp(rc, campaign.StateSent), stamp(rc, campaign.StateDelivered), stamp(rc, campaign.StateRead),
				eventStamp(rc, campaign.EventReplied), eventStamp(rc, campaign.EventOptedOut))
			if withVariant {
				row = append(row, c.VariantOf(rc.Key))
			}
			if err := out.Write(row); err != nil {
				return // the client went away
			}
		}
		out.Flush()
		if out.Error() != nil {
			return
		}
		cursor = next
	}
}

// stamp is when a recipient first reached state, RFC 3339 in UTC, or "".
func stamp(r campaign.Recipient, state campaign.State) string {
	if t := campaign.FirstAt(r.History, state); !t.IsZero() {
		return t.UTC().Format(time.RFC3339)
	}
	return ""
}

// eventStamp is when a recipient first did event (replied, opted out),
// RFC 3339 in UTC, or "".
func eventStamp(r campaign.Recipient, event string) string {
	if t := campaign.EventAt(r.History, event); !t.IsZero() {
		return t.UTC().Format(time.RFC3339)
	}
	return ""
}

// cell keeps a spreadsheet from running a value as a formula (CSV
// injection): values that a spreadsheet would read as one start with '.
func cell(v string) string {
	if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
		return "'" + v
	}
	return v
}

// events streams GET /v1/campaigns/{id}/events as Server-Sent Events: the
// campaign (status, counts, funnel, credits, ETA) each time it changes,
// checked every second, until it ends or the client leaves.
func (s *server) events(w http.ResponseWriter, r *http.Request) {
	c, err := s.store.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		s.campaignError(w, r, err)
		return
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		s.internalError(w, r, errors.New("the response writer cannot stream"))
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no") // proxies must not hold the stream back
	w.WriteHeader(http.StatusOK)

	var last []byte
	tick := time.NewTicker(s.eventsEvery)
	defer tick.Stop()
	idle := 0
	for {
		c.Rejected = nil // the stream is about progress; GET the campaign for them
		if err := s.forecast.Annotate(r.Context(), c); err != nil && r.Context().Err() == nil {
			s.log.Warn("forecast of a followed campaign", zap.String("campaign", c.ID), zap.Error(err))
		}
		data, _ := json.Marshal(c)
		if string(data) != string(last) {
			fmt.Fprintf(w, "event: campaign\ndata: %s\n\n", data)
			flusher.Flush()
			last, idle = data, 0
		} else if idle++; idle*int(s.eventsEvery/time.Millisecond) >= 15000 {
			fmt.Fprint(w, ": still here\n\n") // keeps proxies from closing an idle stream
			flusher.Flush()
			idle = 0
		}
		if c.Status == campaign.StatusCompleted || c.Status == campaign.StatusCancelled {
			fmt.Fprint(w, "event: end\ndata: {}\n\n")
			flusher.Flush()
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
		}
		if c, err = s.store.Get(r.Context(), c.ID); err != nil {
			return
		}
	}
}
