package sandbox

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
)

// inspectionRoutes serve /_sandbox/: what the sandbox received and knobs to
// change it, without auth, for `make run` users and for tests that drive a
// separate process. They are not API calls: not rate limited, not counted.
//
//	GET    /_sandbox/messages                   accepted messages, arrival order
//	GET    /_sandbox/answers                    answers per HTTP status
//	GET    /_sandbox/credits                    total, used, non-recurring, remaining
//	POST   /_sandbox/credits {"total":N}        set messaging_quota.total
//	POST   /_sandbox/faults  {Fault}            inject a fault
//	DELETE /_sandbox/faults                     clear faults
//	POST   /_sandbox/accounts/{phone}/connect   ConnectAccount
//	POST   /_sandbox/accounts/{phone}/disconnect
//	POST   /_sandbox/receive {"account","phone","text"}
//	                                            Receive: phone writes to account
//	                                            ("" the default); answers {"uid"}
//	GET    /_sandbox/webhook                    {"url"}: where webhook events go
//	POST   /_sandbox/webhook {"url"}            SetWebhookURL ("": nowhere)
//
// What the API itself answers is the API's business: GET /chats and
// GET /chats/{chat_id}/messages (with the token) show the chats and their
// histories as a client sees them.
func (s *Server) inspectionRoutes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_sandbox/messages", func(w http.ResponseWriter, _ *http.Request) {
		okReply(s.Messages()).write(w)
	})
	mux.HandleFunc("GET /_sandbox/answers", func(w http.ResponseWriter, _ *http.Request) {
		counts := map[string]int{}
		for status, n := range s.Answers() {
			counts[strconv.Itoa(status)] = n
		}
		okReply(counts).write(w)
	})
	mux.HandleFunc("GET /_sandbox/credits", func(w http.ResponseWriter, _ *http.Request) {
		okReply(s.creditsView()).write(w)
	})
	mux.HandleFunc("POST /_sandbox/credits", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Total *int64 `json:"total"`
		}
		if err := decodeJSON(r, &in); err != nil || in.Total == nil {
			validationReply([]fieldError{{Fields: []string{"total"}, Msg: "a JSON body {\"total\": N} is required"}}).write(w)
			return
		}
		s.SetCredits(*in.Total)
		okReply(s.creditsView()).write(w)
	})
	mux.HandleFunc("POST /_sandbox/faults", func(w http.ResponseWriter, r *http.Request) {
		var f Fault
		if err := decodeJSON(r, &f); err != nil {
			validationReply([]fieldError{{Fields: []string{"body"}, Msg: err.Error()}}).write(w)
			return
		}
		s.Inject(f)
		okReply(f).write(w)
	})
	mux.HandleFunc("DELETE /_sandbox/faults", func(w http.ResponseWriter, _ *http.Request) {
		s.ClearFaults()
		okReply(map[string]any{}).write(w)
	})
	mux.HandleFunc("POST /_sandbox/receive", s.inspectReceive)
	mux.HandleFunc("GET /_sandbox/webhook", func(w http.ResponseWriter, _ *http.Request) {
		okReply(map[string]string{"url": s.WebhookURL()}).write(w)
	})
	mux.HandleFunc("POST /_sandbox/webhook", s.inspectSetWebhook)
	mux.HandleFunc("POST /_sandbox/accounts/{phone}/{action}", func(w http.ResponseWriter, r *http.Request) {
		phone := r.PathValue("phone")
		if _, ok := s.normalizePhone(phone); !ok {
			validationReply([]fieldError{{Fields: []string{"phone"}, Msg: "not a phone number"}}).write(w)
			return
		}
		switch r.PathValue("action") {
		case "connect":
			s.ConnectAccount(phone)
		case "disconnect":
			s.DisconnectAccount(phone)
		default:
			errorReply(http.StatusNotFound, "", "unknown action", nil).write(w)
			return
		}
		okReply(map[string]any{}).write(w)
	})
	return mux
}

// inspectReceive serves POST /_sandbox/receive.
func (s *Server) inspectReceive(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Account string `json:"account"`
		Phone   string `json:"phone"`
		Text    string `json:"text"`
	}
	if err := decodeJSON(r, &in); err != nil || in.Phone == "" {
		validationReply([]fieldError{{Fields: []string{"phone"}, Msg: `a JSON body {"phone": "+…", "text": "…"} is required`}}).write(w)
		return
	}
	uid, ok := s.Receive(in.Account, in.Phone, in.Text)
	if !ok {
		validationReply([]fieldError{{Fields: []string{"account", "phone"}, Msg: "not a phone number, or not an account of the workspace"}}).write(w)
		return
	}
	okReply(map[string]string{"uid": uid}).write(w)
}

// inspectSetWebhook serves POST /_sandbox/webhook.
func (s *Server) inspectSetWebhook(w http.ResponseWriter, r *http.Request) {
	var in struct {
		URL *string `json:"url"`
	}
	if err := decodeJSON(r, &in); err != nil || in.URL == nil {
		validationReply([]fieldError{{Fields: []string{"url"}, Msg: `a JSON body {"url": "http://…"} is required ("" stops the webhooks)`}}).write(w)
		return
	}
	if *in.URL != "" {
		if u, err := url.Parse(*in.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			validationReply([]fieldError{{Fields: []string{"url"}, Msg: "must be an http:// or https:// URL"}}).write(w)
			return
		}
	}
	s.SetWebhookURL(*in.URL)
	okReply(map[string]string{"url": s.WebhookURL()}).write(w)
}

func (s *Server) creditsView() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.applyRefundsLocked(s.now())
	return map[string]int64{
		"total":                 s.creditsTotal,
		"used":                  s.creditsUsed,
		"non_recurring_balance": max(0, s.nonRecurringCredit),
		"remaining":             s.remainingLocked(),
	}
}

func decodeJSON(r *http.Request, v any) error {
	return json.NewDecoder(io.LimitReader(r.Body, maxRequestBody)).Decode(v)
}
