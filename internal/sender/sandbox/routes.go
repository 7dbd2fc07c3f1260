package sandbox

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxRequestBody bounds what the sandbox reads of a request.
const maxRequestBody = 1 << 20

// apiRequest is an authenticated API request, its body read, with what the
// fault selectors match on.
type apiRequest struct {
	r    *http.Request
	body []byte
	// receivedAt is when the whole request had arrived, before any lock or
	// fault: the moment a provider stamps, and what pacing is measured by.
	receivedAt time.Time
	account    string // the sending account, when the request has one
	recipient  string // the recipient, when the request has one
}

// reply is an answer not yet written, so that a fault can replace it after
// the request was processed.
type reply struct {
	status      int
	contentType string
	header      http.Header
	body        []byte
	delay       time.Duration // wait this long before answering (a gateway's typing)
}

func (rep reply) write(w http.ResponseWriter) {
	for k, vs := range rep.header {
		w.Header()[http.CanonicalHeaderKey(k)] = vs
	}
	if rep.contentType != "" {
		w.Header().Set("Content-Type", rep.contentType)
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(rep.body)))
	w.WriteHeader(rep.status)
	_, _ = w.Write(rep.body)
}

func jsonReply(status int, v any) reply {
	body, err := json.Marshal(v)
	if err != nil {
		panic("sandbox: encoding an answer: " + err.Error()) // only our own types are encoded
	}
	return reply{status: status, contentType: "application/json", body: body}
}

// errorReply is the provider's error envelope. code "" leaves error_code out.
func errorReply(status int, code, message string, fields []fieldError) reply {
	body := map[string]any{"status": "error", "message": message}
	if code != "" {
		body["error_code"] = code
	}
	if len(fields) > 0 {
		body["errors"] = fields
	}
	return jsonReply(status, body)
}

func validationReply(fields []fieldError) reply {
	return errorReply(http.StatusBadRequest, "validation_error", "Validation error", fields)
}

func okReply(data any) reply {
	return jsonReply(http.StatusOK, map[string]any{"status": "ok", "data": data})
}

// notFoundPage is the real API's answer to an unknown path or a trailing
// slash: its web app's HTML 404 page, not the JSON error.
func notFoundPage() reply {
	return reply{
		status:      http.StatusNotFound,
		contentType: "text/html; charset=utf-8",
		body:        []byte("<!DOCTYPE html>\n<html><head><title>Page not found | TimelinesAI</title></head>\n<body><h1>404</h1><p>The page you are looking for does not exist.</p></body></html>\n"),
	}
}

func (s *Server) apiRoutes() *http.ServeMux {
	mux := http.NewServeMux()
	send := func(endpoint sendEndpoint) func(*apiRequest) {
		return func(req *apiRequest) { s.sendTarget(endpoint, req) }
	}
	mux.Handle("POST /messages", s.endpoint(OpSend, send(toPhone), s.handleSend(toPhone)))
	mux.Handle("POST /chats/{chat_id}/messages", s.endpoint(OpSend, send(toChat), s.handleSend(toChat)))
	mux.Handle("POST /messages/to_jid", s.endpoint(OpSend, send(toJID), s.handleSend(toJID)))
	mux.Handle("GET /messages/{uid}", s.endpoint(OpStatus, s.messageTarget, s.handleMessage))
	mux.Handle("GET /messages/{uid}/status_history", s.endpoint(OpStatus, s.messageTarget, s.handleStatusHistory))
	mux.Handle("GET /whatsapp_accounts", s.endpoint(OpAccounts, nil, s.handleAccounts))
	mux.Handle("GET /chats", s.endpoint(OpChats, s.chatsTarget, s.handleChats))
	mux.Handle("GET /chats/{chat_id}/messages", s.endpoint(OpChats, s.chatMessagesTarget, s.handleChatMessages))
	quotas := s.endpoint(OpQuota, nil, s.handleQuotas)
	switch s.cfg.QuotaPath {
	case "":
		mux.Handle("GET /quotas", quotas)
		mux.Handle("GET /workspace/quotas", quotas)
	default:
		mux.Handle("GET "+s.cfg.QuotaPath, quotas)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { notFoundPage().write(w) })
	return mux
}

// endpoint wraps an API route: auth, the API-call quota, and faults.
// target fills in what faults match on; handle produces the answer.
func (s *Server) endpoint(op string, target func(*apiRequest), handle func(*apiRequest) reply) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rep, ok := s.authenticate(r); !ok {
			rep.write(w)
			return
		}
		// Read the whole request first: a fault that drops the connection
		// must do so after the client has finished writing, as a provider
		// that received the request and then failed would.
		body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBody+1))
		if err != nil {
			return // the client went away
		}
		if rep, ok := s.countAPICall(); !ok {
			rep.write(w)
			return
		}
		if len(body) > maxRequestBody {
			validationReply([]fieldError{{Fields: []string{"body"}, Msg: "request body too large"}}).write(w)
			return
		}

		req := &apiRequest{r: r, body: body, receivedAt: s.now()}
		if target != nil {
			target(req)
		}
		fault := s.takeFault(op, req.account, req.recipient)
		if fault == nil {
			deliver(w, r, handle(req))
			return
		}
		var rep reply
		if fault.Process {
			rep = handle(req)
		}
		if !sleep(r, fault.Delay) {
			return // the client gave up waiting; an unprocessed request stays unprocessed
		}
		switch {
		case fault.Drop:
			dropConnection(w)
		case fault.Status != 0:
			fault.reply().write(w)
		case fault.Process:
			deliver(w, r, rep)
		default:
			deliver(w, r, handle(req))
		}
	})
}

// deliver writes rep after its delay, or nothing when the client leaves
// first.
func deliver(w http.ResponseWriter, r *http.Request, rep reply) {
	if sleep(r, rep.delay) {
		rep.write(w)
	}
}

// sleep waits d, and says false when the client went away first.
func sleep(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

// dropConnection closes the client's connection without an answer.
func dropConnection(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// HTTP/2 cannot hand over the connection: abort the stream instead.
		panic(http.ErrAbortHandler)
	}
	conn.Close()
}

// authenticate checks the request's Authorization header the way the mode's
// provider does.
func (s *Server) authenticate(r *http.Request) (reply, bool) {
	if s.cfg.Mode == ModeGateway {
		return s.authenticateGateway(r)
	}
	header := r.Header.Get("Authorization")
	scheme, token, _ := strings.Cut(header, " ")
	token = strings.TrimSpace(token)
	switch {
	case header == "" || !strings.EqualFold(scheme, "Bearer") || token == "":
		return s.unauthorized("missing_credentials", "Authorization header with a Bearer token is required"), false
	case subtle.ConstantTimeCompare([]byte(token), []byte(s.cfg.Token)) != 1:
		return s.unauthorized("invalid_token", "Invalid or expired token"), false
	}
	return reply{}, true
}

// unauthorized is TimelinesAI's 401: plain text, as observed, unless
// Config.JSON401 asks for the documented JSON error.
func (s *Server) unauthorized(code, message string) reply {
	if !s.cfg.JSON401 {
		return reply{status: http.StatusUnauthorized, contentType: "text/plain; charset=utf-8", body: []byte("Unauthorized")}
	}
	return errorReply(http.StatusUnauthorized, code, message, nil)
}

// countAPICall spends one API call of the monthly budget, or refuses.
func (s *Server) countAPICall() (reply, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cfg.Mode == ModeGateway {
		return reply{}, true // a gateway counts nothing
	}
	if s.cfg.APICalls > 0 && s.apiCallsUsed >= s.cfg.APICalls {
		msg := fmt.Sprintf("API calls quota exceeded: all %d API calls of this period are used", s.cfg.APICalls)
		return errorReply(http.StatusForbidden, "quota_exceeded", msg, nil), false
	}
	s.apiCallsUsed++
	s.changedLocked()
	return reply{}, true
}

// sendTarget reads from a send request what faults match on. Malformed
// bodies just match fewer faults; the handler reports them.
func (s *Server) sendTarget(endpoint sendEndpoint, req *apiRequest) {
	var peek struct {
		Phone   string `json:"phone"`
		JID     string `json:"jid"`
		Account string `json:"whatsapp_account_phone"`
	}
	_ = json.Unmarshal(req.body, &peek)

	s.mu.Lock()
	defer s.mu.Unlock()
	switch endpoint {
	case toChat:
		id, _ := strconv.ParseInt(req.r.PathValue("chat_id"), 10, 64)
		if c := s.chatLocked(id); c != nil {
			req.account, req.recipient = c.sender, c.recipient
		}
		return
	case toPhone:
		req.recipient, _ = s.normalizePhone(peek.Phone)
	case toJID:
		req.recipient, _ = parseJID(peek.JID)
	}
	req.account, _ = s.resolveSenderLocked(peek.Account)
}

// messageTarget reads a message UID's account and recipient for faults.
func (s *Server) messageTarget(req *apiRequest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rec, ok := s.byUID[req.r.PathValue("uid")]; ok {
		req.account, req.recipient = rec.msg.Sender, rec.msg.Recipient
	}
}

func formatTime(t time.Time) string { return t.Format(TimestampLayout) }

func (s *Server) handleStatusHistory(req *apiRequest) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.byUID[req.r.PathValue("uid")]
	if !ok {
		return errorReply(http.StatusNotFound, "", "Message not found", nil)
	}
	type entry struct {
		Status    string `json:"status"`
		Timestamp string `json:"timestamp"`
	}
	entries := []entry{}
	for _, ev := range rec.history(s.now(), s.cfg) {
		entries = append(entries, entry{ev.Status, formatTime(ev.At)})
	}
	return okReply(entries)
}

// handleMessage answers GET /messages/{uid} in the shape of the provider's
// reference page.
func (s *Server) handleMessage(req *apiRequest) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.byUID[req.r.PathValue("uid")]
	if !ok {
		return errorReply(http.StatusNotFound, "", "Message not found", nil)
	}
	entry := chatEntry{uid: rec.msg.UID, at: rec.msg.ReceivedAt, sent: rec}
	return okReply(s.messageObject(s.chatLocked(rec.msg.Chat), entry, s.now()))
}

func (s *Server) handleAccounts(*apiRequest) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	type entry struct {
		ID          string `json:"id"`
		Phone       string `json:"phone"`
		ConnectedOn string `json:"connected_on"`
		Status      string `json:"status"`
		AccountName string `json:"account_name"`
		IsVisible   bool   `json:"is_visible"`
	}
	list := []entry{}
	for _, acc := range s.accounts {
		status := "Active"
		if !acc.connected {
			status = "Disconnected"
		}
		list = append(list, entry{
			ID:          jidOf(acc.phone),
			Phone:       acc.phone,
			ConnectedOn: formatTime(acc.connectedOn),
			Status:      status,
			AccountName: "Sandbox " + acc.phone,
			IsVisible:   true,
		})
	}
	return okReply(map[string]any{"whatsapp_accounts": list})
}

// handleQuotas answers GET /quotas (and /workspace/quotas) in the shape of
// the provider's reference page. Periods are calendar months of the clock.
func (s *Server) handleQuotas(*apiRequest) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.applyRefundsLocked(now)

	start := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, now.Location())
	end := start.AddDate(0, 1, 0)
	block := func(total, used int64) map[string]any {
		return map[string]any{
			"total":        total,
			"used":         used,
			"period_start": formatTime(start),
			"period_end":   formatTime(end),
		}
	}
	apiTotal := s.cfg.APICalls
	if apiTotal == 0 {
		apiTotal = unlimitedAPICalls
	}
	seats := int64(max(1, len(s.accounts)))
	return okReply(map[string]any{
		"messaging_quota": block(s.creditsTotal, s.creditsUsed),
		"api_calls_quota": block(apiTotal, s.apiCallsUsed),
		"seats":           block(seats, seats),
		"non_recurring_quota": map[string]any{
			"remaining_balance": max(0, s.nonRecurringCredit),
			"last_updated_at":   formatTime(s.nonRecurringAt),
		},
	})
}
