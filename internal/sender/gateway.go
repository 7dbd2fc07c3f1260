package sender

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// The self-hosted WhatsApp gateway (spec/gateway-send-chat-message.txt):
//
//	POST {base}/chats/{chat_jid}/messages
//	Authorization: <the key, exactly as configured>
//	{"text","reply_to_message_id","typing_simulation","presence_simulation"}
//
// answered with {"status":true,"code":200,"message","data":{"message_id",
// "status","timestamp"}} after the gateway has sent the message (and
// "typed" it first), or with {"status":false,"code","message","error"}.
// It has no quotas, no status history and no way to look messages up.

const (
	// DefaultTypingAllowance is how long a gateway may take beyond the
	// request timeout to answer a send, for its typing simulation
	// (WithTypingAllowance).
	DefaultTypingAllowance = 30 * time.Second

	// GatewayMaxTextLength is the gateway's text limit. Its page gives
	// none, so the limit is WhatsApp's own: 65536 characters. A lower one
	// would refuse messages the gateway and WhatsApp deliver.
	GatewayMaxTextLength = 65536
)

// WithTypingAllowance gives a gateway send d on top of the request timeout
// (WithTimeout): the gateway answers only after it has "typed" the message,
// for as long as its typing simulation takes, and a long simulation must not
// turn a message that went out into an Unconfirmed timeout. Default
// DefaultTypingAllowance; zero or negative: none. TimelinesAI ignores it.
func WithTypingAllowance(d time.Duration) Option {
	return func(s *clientSettings) { s.typingAllowance = max(0, d) }
}

// GatewayCapabilities are what the self-hosted gateway can do: text messages
// (replies too) to phones and JIDs, with typing and presence simulation; no
// credits, status history, lookups, attachments, labels or chat names.
func GatewayCapabilities() Capabilities {
	return Capabilities{
		Name:                "the gateway",
		TypingSimulation:    true,
		AnswersAfterSending: true,
		AddressByPhone:      true,
		AddressByJID:        true,
		ReplyToPhone:        true,
		MaxTextLength:       GatewayMaxTextLength,
	}
}

// Gateway is the Provider for one self-hosted WhatsApp gateway instance
// (one WhatsApp number). GatewayRouter puts several behind one Provider. It
// is safe for concurrent use.
type Gateway struct {
	apiClient
}

var _ Provider = (*Gateway)(nil)

// NewGateway returns a client of the gateway at baseURL (e.g.
// http://localhost:7001) that sends apiKey as the Authorization header,
// exactly as given: the gateway's page shows the raw key, and a gateway
// that wants a JWT gets "Bearer <jwt>" written into apiKey. The key never
// appears in errors.
func NewGateway(baseURL, apiKey string, opts ...Option) *Gateway {
	return newGateway(newSettings(baseURL, opts), apiKey)
}

func newGateway(settings clientSettings, apiKey string) *Gateway {
	secrets := []string{apiKey}
	if _, credential, ok := strings.Cut(apiKey, " "); ok {
		secrets = append(secrets, strings.TrimSpace(credential)) // "Bearer <jwt>": the JWT alone too
	}
	return &Gateway{apiClient{
		clientSettings: settings,
		authorization:  apiKey,
		secrets:        secrets,
		classify:       classifyGatewayResponse,
	}}
}

// Capabilities are GatewayCapabilities.
func (g *Gateway) Capabilities() Capabilities { return GatewayCapabilities() }

// Quota answers ErrNotSupported: the gateway meters nothing.
func (g *Gateway) Quota(context.Context) (Quota, error) { return Quota{}, ErrNotSupported }

// StatusHistory answers ErrNotSupported: the gateway keeps no history.
func (g *Gateway) StatusHistory(context.Context, string) ([]StatusEvent, error) {
	return nil, ErrNotSupported
}

// gatewayBody is the JSON body of POST /chats/{chat_jid}/messages. Unset
// simulation flags are left out: the gateway's default (enabled) applies.
type gatewayBody struct {
	Text               string `json:"text"`
	ReplyToMessageID   string `json:"reply_to_message_id,omitempty"`
	TypingSimulation   *bool  `json:"typing_simulation,omitempty"`
	PresenceSimulation *bool  `json:"presence_simulation,omitempty"`
}

// Send posts msg to POST /chats/{chat_jid}/messages, a phone turned into
// <digits>@s.whatsapp.net and a JID used as it is. msg.AccountPhone is not
// sent: an instance sends from its own number (GatewayRouter picks the
// instance by it). A message the gateway cannot take (a chat id, an
// attachment, see GatewayCapabilities) is refused without a request.
func (g *Gateway) Send(ctx context.Context, msg Message) (Receipt, error) {
	if perr := refuseInvalid(msg, GatewayCapabilities()); perr != nil {
		return Receipt{}, perr
	}
	jid, perr := GatewayChatJID(msg)
	if perr != nil {
		return Receipt{}, perr
	}
	payload, err := json.Marshal(gatewayBody{
		Text:               msg.Text,
		ReplyToMessageID:   msg.ReplyTo,
		TypingSimulation:   msg.TypingSimulation,
		PresenceSimulation: msg.PresenceSimulation,
	})
	if err != nil { // cannot happen for this struct; kept as a value, not a panic
		return Receipt{}, g.seal(&Error{Kind: Invalid, Op: OpSend, Message: "encoding the message", Err: err})
	}
	ans, perr := g.do(ctx, request{
		op:            OpSend,
		method:        http.MethodPost,
		path:          "/chats/" + url.PathEscape(jid) + "/messages",
		body:          payload,
		mayHaveEffect: true,
		timeout:       g.timeout + g.typingAllowance,
	})
	if perr != nil {
		return Receipt{}, perr
	}
	receipt, perr := readGatewayReceipt(ans)
	if perr != nil {
		return Receipt{}, g.seal(perr)
	}
	return receipt, nil
}

// GatewayChatJID is the chat_jid the gateway addresses msg's recipient by: a
// phone's digits with @s.whatsapp.net, or the JID as it is. A chat id cannot
// be addressed (Invalid, naming chat_id), nor a phone or JID it cannot read.
func GatewayChatJID(msg Message) (string, *Error) {
	invalid := func(field, text string) *Error {
		return &Error{Kind: Invalid, Op: OpSend, Code: "validation_error", Message: "message refused before sending",
			Fields: []FieldError{{Fields: []string{field}, Msg: text}}}
	}
	switch {
	case msg.Phone != "":
		digits, ok := e164Digits(msg.Phone)
		if !ok || !strings.HasPrefix(strings.TrimSpace(msg.Phone), "+") {
			return "", invalid("phone", "must be a phone number in international format, +<country code><number>")
		}
		return digits + "@s.whatsapp.net", nil
	case msg.JID != "":
		jid := strings.TrimSpace(msg.JID)
		if user, server, ok := strings.Cut(jid, "@"); !ok || user == "" || server == "" || strings.ContainsAny(jid, "/?# ") {
			return "", invalid("jid", "must be a WhatsApp ID such as 14155550100@s.whatsapp.net, or a group's …@g.us")
		}
		return jid, nil
	}
	return "", invalid("chat_id", "the gateway addresses recipients by phone or JID, not by chat_id")
}

// gatewayEnvelope is the gateway's answer, success or error.
type gatewayEnvelope struct {
	Status  flexBool        `json:"status"`
	Code    flexInt         `json:"code"`
	Message string          `json:"message"`
	Error   json.RawMessage `json:"error"`
	Data    struct {
		MessageID string  `json:"message_id"`
		Status    string  `json:"status"`
		Timestamp flexInt `json:"timestamp"`
	} `json:"data"`
}

// parseGatewayEnvelope reads body as the gateway's envelope; ok is false
// for anything else (a proxy's page, plain text).
func parseGatewayEnvelope(body []byte) (env gatewayEnvelope, ok bool) {
	if !looksLikeJSONObject(body) || json.Unmarshal(body, &env) != nil {
		return gatewayEnvelope{}, false
	}
	return env, true
}

// text is what the envelope says went wrong: error (the specific part,
// "Text field is required"), else message ("Bad request").
func (env gatewayEnvelope) text() string {
	if s := firstString(env.Error); s != "" {
		return s
	}
	return env.Message
}

// readGatewayReceipt reads a 2xx answer to a send. Anything but
// status:true with a message_id is Unconfirmed: a 2xx says the gateway took
// the request, and nothing says it did not send.
func readGatewayReceipt(ans answer) (Receipt, *Error) {
	env, ok := parseGatewayEnvelope(ans.body)
	switch {
	case !ok:
		return Receipt{}, &Error{Kind: Unconfirmed, Op: OpSend, HTTPStatus: ans.status, Message: "the gateway answered with a body that is not its envelope: " + describeBody(ans.header, ans.body)}
	case env.Status.set && !env.Status.value:
		return Receipt{}, &Error{Kind: Unconfirmed, Op: OpSend, HTTPStatus: ans.status, Message: fmt.Sprintf("the gateway answered HTTP %d with status false: %s", ans.status, env.text())}
	case env.Data.MessageID == "":
		return Receipt{}, &Error{Kind: Unconfirmed, Op: OpSend, HTTPStatus: ans.status, Message: "the gateway accepted the request but its answer has no message_id"}
	}
	return Receipt{
		MessageUID: env.Data.MessageID,
		Status:     env.Data.Status,
		SentAt:     unixTime(int64(env.Data.Timestamp)),
		AnsweredAt: ans.at,
	}, nil
}

// unixTime reads a Unix time in seconds (or, past the year 33658, in
// milliseconds); 0 or less is no time.
func unixTime(n int64) time.Time {
	switch {
	case n <= 0:
		return time.Time{}
	case n > 1e12:
		return time.UnixMilli(n)
	}
	return time.Unix(n, 0)
}

// classifyGatewayResponse turns a non-2xx answer of the gateway into an
// Error, with the same rules as TimelinesAI's where the meaning is the same.
// The HTTP status decides, not the body's code (the page's own 500 example
// carries code 400): 400 Invalid with the error text, 401 AuthFailed, 429
// RateLimited, any 5xx to a send Unconfirmed (the gateway may have sent
// before it failed).
func classifyGatewayResponse(req request, status int, header http.Header, body []byte, now time.Time) *Error {
	e := &Error{Op: req.op, HTTPStatus: status, RetryAfter: parseRetryAfter(header, now)}
	env, isJSON := parseGatewayEnvelope(body)
	if isJSON {
		e.Message = env.text()
	} else {
		e.Message = describeBody(header, body)
	}
	if e.Message == "" {
		e.Message = http.StatusText(status)
	}
	if req.mayHaveEffect && status >= 500 && status < 600 {
		e.Kind = Unconfirmed
		return e
	}
	e.Kind = kindOfStatus(status, isJSON)
	if status < 400 || status >= 600 {
		e.Message = "unexpected HTTP status: " + e.Message
	}
	return e
}
