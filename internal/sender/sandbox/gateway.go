package sandbox

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"
)

// gatewayMaxText is WhatsApp's own text limit, which a gateway passes on.
const gatewayMaxText = 65536

// gatewayRoutes serve ModeGateway's one endpoint.
func (s *Server) gatewayRoutes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("POST /chats/{chat_jid}/messages", s.endpoint(OpSend, s.gatewayTarget, s.handleGatewaySend))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		gatewayError(http.StatusNotFound, "Not found", "no route for "+r.Method+" "+r.URL.Path).write(w)
	})
	return mux
}

// gatewayError is the gateway's error envelope.
func gatewayError(status int, message, errText string) reply {
	return reply{status: status, contentType: "application/json", body: []byte(GatewayErrorBody(status, message, errText))}
}

// GatewayErrorBody is the body of a gateway error answer,
// {"status":false,"code":code,"message":message,"error":errText}, for
// faults that play the gateway's error answers: its page's second 500
// example is Fault{Status: 500, Body: GatewayErrorBody(400, "Bad request",
// "Bad request")}.
func GatewayErrorBody(code int, message, errText string) string {
	body, _ := json.Marshal(map[string]any{"status": false, "code": code, "message": message, "error": errText})
	return string(body)
}

// authenticateGateway wants Config.Token as the whole Authorization header.
func (s *Server) authenticateGateway(r *http.Request) (reply, bool) {
	header := r.Header.Get("Authorization")
	if header != "" && subtle.ConstantTimeCompare([]byte(header), []byte(s.cfg.Token)) == 1 {
		return reply{}, true
	}
	errText := "Invalid or missing authentication"
	if scheme, _, _ := strings.Cut(header, " "); strings.EqualFold(scheme, "Bearer") {
		errText = "Invalid or expired JWT token"
	}
	return gatewayError(http.StatusUnauthorized, "Unauthorized", errText), false
}

// gatewayTarget reads what faults match on: the instance's number and the
// chat's recipient.
func (s *Server) gatewayTarget(req *apiRequest) {
	req.recipient, _ = parseJID(req.r.PathValue("chat_jid"))
	s.mu.Lock()
	defer s.mu.Unlock()
	if acc := s.instanceAccountLocked(); acc != nil {
		req.account = acc.phone
	}
}

// instanceAccountLocked is the number a gateway instance sends from: the
// first account the sandbox knows; nil when it knows none.
func (s *Server) instanceAccountLocked() *account {
	if len(s.accounts) == 0 {
		return nil
	}
	return s.accounts[0]
}

// gatewayFields are a gateway send's body fields, typed.
type gatewayFields struct {
	text, replyTo          string
	typingSim, presenceSim *bool
}

// parseGatewayBody reads a send body; the reply is the gateway's 400 when
// it cannot.
func parseGatewayBody(body []byte) (gatewayFields, *reply) {
	var f gatewayFields
	badRequest := func(errText string) (gatewayFields, *reply) {
		rep := gatewayError(http.StatusBadRequest, "Bad request", errText)
		return gatewayFields{}, &rep
	}
	var raw struct {
		Text               *json.RawMessage `json:"text"`
		ReplyToMessageID   *string          `json:"reply_to_message_id"`
		TypingSimulation   *bool            `json:"typing_simulation"`
		PresenceSimulation *bool            `json:"presence_simulation"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&raw); err != nil || dec.More() {
		return badRequest("Bad request")
	}
	if raw.Text == nil || string(*raw.Text) == "null" {
		return badRequest("Text field is required")
	}
	if json.Unmarshal(*raw.Text, &f.text) != nil {
		return badRequest("Bad request")
	}
	switch n := utf8.RuneCountInString(f.text); {
	case strings.TrimSpace(f.text) == "":
		return badRequest("Text field is required")
	case n > gatewayMaxText:
		return badRequest(fmt.Sprintf("Text is too long: %d characters, at most %d", n, gatewayMaxText))
	}
	if raw.ReplyToMessageID != nil {
		f.replyTo = *raw.ReplyToMessageID
	}
	f.typingSim, f.presenceSim = raw.TypingSimulation, raw.PresenceSimulation
	return f, nil
}

// handleGatewaySend answers POST /chats/{chat_jid}/messages: the message is
// taken at once, "typed" for TypingDelay (unless typing_simulation is
// false), Sent, and answered.
func (s *Server) handleGatewaySend(req *apiRequest) reply {
	f, bad := parseGatewayBody(req.body)
	if bad != nil {
		return *bad
	}
	jid := req.r.PathValue("chat_jid")
	recipient, ok := parseJID(jid)
	if !ok {
		return gatewayError(http.StatusBadRequest, "Bad request", "Invalid chat JID: "+jid)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	sender := ""
	if acc := s.instanceAccountLocked(); acc != nil {
		if !acc.connected {
			return gatewayError(http.StatusInternalServerError, "Internal server error", "Failed to send message")
		}
		sender = acc.phone
	}
	typing := s.cfg.TypingDelay
	if f.typingSim != nil && !*f.typingSim {
		typing = 0
	}
	now := s.now()
	chat := s.chatForLocked(sender, recipient, now)
	rec := s.acceptLocked(now, Message{
		UID:                newGatewayMessageID(),
		JID:                jid,
		Text:               f.text,
		ReplyTo:            f.replyTo,
		TypingSimulation:   f.typingSim,
		PresenceSimulation: f.presenceSim,
		Authorization:      req.r.Header.Get("Authorization"),
		Sender:             sender,
		Recipient:          recipient,
		Chat:               chat.id,
		ReceivedAt:         req.receivedAt,
		SentAt:             req.receivedAt.Add(typing),
	})
	rep := jsonReply(http.StatusOK, map[string]any{
		"status":  true,
		"code":    http.StatusOK,
		"message": "Message sent successfully",
		"data": map[string]any{
			"message_id": rec.msg.UID,
			"status":     "sent",
			"timestamp":  rec.msg.SentAt.Unix(),
		},
	})
	rep.delay = typing
	return rep
}

// newGatewayMessageID returns an ID shaped like WhatsApp's message IDs, as
// the gateway's are ("3EB0ABC123DEF456789").
func newGatewayMessageID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return fmt.Sprintf("3EB0%X", b)
}
