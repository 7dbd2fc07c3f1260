package console

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/wacampaign/wacampaign/internal/campaign"
)

// Live updates: a page that shows something still moving opens an
// EventSource on the console. Each event carries "fragments", HTML of the
// page's live parts keyed by element id, rendered by the same templates as
// the page, so that the numbers, words and charts look the same whether
// they came with the page or a moment later.

// campaignLiveParts are the campaign page's live parts: element id →
// partial template.
var campaignLiveParts = map[string]string{
	"live-head":     "campaign-head",
	"live-progress": "campaign-progress",
	"live-funnel":   "campaign-funnel",
}

// sse writes server-sent events to the browser as they come.
type sse struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

func startSSE(w http.ResponseWriter) *sse {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no") // proxies must not hold the stream back
	w.WriteHeader(http.StatusOK)
	return &sse{w: w, rc: http.NewResponseController(w)}
}

// send writes one event; false when the browser has gone.
func (e *sse) send(event string, data any) bool {
	b, err := json.Marshal(data)
	if err != nil {
		return false
	}
	if _, err := fmt.Fprintf(e.w, "event: %s\ndata: %s\n\n", event, b); err != nil {
		return false
	}
	return e.rc.Flush() == nil
}

// comment keeps an idle stream open through proxies.
func (e *sse) comment(text string) bool {
	if _, err := fmt.Fprintf(e.w, ": %s\n\n", text); err != nil {
		return false
	}
	return e.rc.Flush() == nil
}

// campaignEvents streams the API's events of one campaign, each turned into
// the page's live parts, until the API ends the stream or the browser (or
// its session) goes.
func (c *Console) campaignEvents(w http.ResponseWriter, r *http.Request, s *session) {
	st, err := c.stream(r.Context(), apiRequest{method: http.MethodGet, path: "/v1/campaigns/" + url.PathEscape(r.PathValue("id")) + "/events", key: s.apiKey})
	if err != nil {
		http.Error(w, "the events cannot be read", http.StatusInternalServerError)
		return
	}
	defer st.Body.Close()
	if st.Status != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(st.Body, 1<<20))
		http.Error(w, decodeEnvelope(st.Status, b, nil).Error(), st.Status)
		return
	}
	out := startSSE(w)
	readEvents(st.Body, func(event, data string) bool {
		switch event {
		case "":
			return out.comment("still here") && c.stillSignedIn(r, s)
		case "end":
			out.send("end", map[string]string{})
			return false
		case "campaign":
			var cp campaign.Campaign
			if err := json.Unmarshal([]byte(data), &cp); err != nil {
				c.log.Warn("an event the console cannot read", zap.Error(err))
				return true
			}
			parts, err := c.renderParts("campaign", campaignLiveParts, campaignView{Campaign: cp, CSRF: s.csrfToken()})
			if err != nil {
				c.log.Error("render live parts", zap.Error(err))
				return false
			}
			return out.send("fragments", parts) && c.stillSignedIn(r, s)
		}
		return true
	})
}

// readEvents calls on for each event of an SSE stream (event "" for a
// comment), until on answers false or the stream ends.
func readEvents(body io.Reader, on func(event, data string) bool) {
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 0, 64<<10), 8<<20)
	var event string
	var data []string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "" && (event != "" || len(data) > 0):
			if !on(event, strings.Join(data, "\n")) {
				return
			}
			event, data = "", nil
		case strings.HasPrefix(line, ":"):
			if !on("", "") {
				return
			}
		case strings.HasPrefix(line, "event:"):
			event = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
		case strings.HasPrefix(line, "data:"):
			data = append(data, strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "))
		}
	}
}

// renderParts renders the partials of parts with data.
func (c *Console) renderParts(pageName string, parts map[string]string, data any) (map[string]string, error) {
	out := make(map[string]string, len(parts))
	for id, partial := range parts {
		html, err := c.fragment(pageName, partial, data)
		if err != nil {
			return nil, err
		}
		out[id] = html
	}
	return out, nil
}

// stillSignedIn reports whether s has not been signed out meanwhile: a
// stream must not outlive its session.
func (c *Console) stillSignedIn(r *http.Request, s *session) bool {
	cur, err := c.sessions.load(r.Context(), s.cookieValue())
	return err == nil && cur != nil
}

// campaignsEvents follows the campaigns list: every listEvery it reads the
// page the browser shows (GET /v1/campaigns, as any app could) and sends
// the rows that changed, until no campaign on it moves any more.
func (c *Console) campaignsEvents(w http.ResponseWriter, r *http.Request, s *session) {
	path := listPath(r.URL.Query().Get("after"))
	out := startSSE(w)
	sent := map[string]string{}
	tick := time.NewTicker(c.listEvery)
	defer tick.Stop()
	for {
		var list campaignList
		if err := c.call(r.Context(), apiRequest{method: http.MethodGet, path: path, key: s.apiKey}, &list); err != nil {
			return // the browser's EventSource reconnects, or the page is reloaded
		}
		changed, live := map[string]string{}, false
		for _, cp := range list.Campaigns {
			v := campaignView{Campaign: cp, CSRF: s.csrfToken()}
			live = live || v.Live()
			html, err := c.fragment("campaigns", "campaign-row", v)
			if err != nil {
				c.log.Error("render a campaign row", zap.Error(err))
				return
			}
			if id := "row-" + cp.ID; sent[id] != html {
				changed[id], sent[id] = html, html
			}
		}
		if len(changed) > 0 && !out.send("fragments", changed) {
			return
		}
		if !live {
			out.send("end", map[string]string{})
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
		}
		if !c.stillSignedIn(r, s) {
			return
		}
	}
}
