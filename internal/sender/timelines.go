package sender

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync/atomic"
	"time"
)

// DefaultTimelinesBaseURL is the root of the TimelinesAI Public API.
const DefaultTimelinesBaseURL = "https://app.timelines.ai/integrations/api"

// The provider documents the quota endpoint under two paths (the overview
// says /quotas, the reference page /workspace/quotas). The client starts with
// the first and falls back to the other on a 404, remembering what worked.
var quotaPaths = [2]string{"/quotas", "/workspace/quotas"}

// TimelinesAI's field limits (its spec pages' maxLength), in Unicode code
// points.
const (
	timelinesMaxTextLength     = 2000
	timelinesMaxLabelLength    = 64
	timelinesMaxChatNameLength = 256
)

// timelinesCredits is TimelinesAI's price of a message: 1 credit, or 2 when
// it has both non-empty text and an attachment.
func timelinesCredits(m Message) int {
	if m.Text != "" && m.HasAttachment() {
		return 2
	}
	return 1
}

// TimelinesCapabilities are what the TimelinesAI Public API can do.
func TimelinesCapabilities() Capabilities {
	return Capabilities{
		Name:              "TimelinesAI",
		MeteredCredits:    true,
		StatusHistory:     true,
		MessageLookup:     true,
		Attachments:       true,
		Labels:            true,
		ChatNames:         true,
		AddressByPhone:    true,
		AddressByJID:      true,
		AddressByChatID:   true,
		MaxTextLength:     timelinesMaxTextLength,
		MaxLabelLength:    timelinesMaxLabelLength,
		MaxChatNameLength: timelinesMaxChatNameLength,
		CreditRule:        timelinesCredits,
	}
}

// Timelines is the Provider for the TimelinesAI Public API. It is safe for
// concurrent use.
type Timelines struct {
	apiClient

	// quotaPathIndex indexes quotaPaths: the quota path that answered last.
	quotaPathIndex atomic.Int32
}

var _ Provider = (*Timelines)(nil)

// NewTimelines returns a client that authenticates with token (as
// "Authorization: Bearer <token>"). WithTypingAllowance does not apply:
// TimelinesAI answers before it sends.
func NewTimelines(token string, opts ...Option) *Timelines {
	return &Timelines{apiClient: apiClient{
		clientSettings: newSettings(DefaultTimelinesBaseURL, opts),
		authorization:  "Bearer " + token,
		secrets:        []string{token},
		classify:       classifyResponse,
	}}
}

// Capabilities are TimelinesCapabilities.
func (t *Timelines) Capabilities() Capabilities { return TimelinesCapabilities() }

// sendBody is the JSON body of the three send endpoints. Which fields are
// filled depends on the endpoint; empty ones are left out.
type sendBody struct {
	Phone                string `json:"phone,omitempty"`
	JID                  string `json:"jid,omitempty"`
	WhatsAppAccountPhone string `json:"whatsapp_account_phone,omitempty"`
	ReplyTo              string `json:"reply_to,omitempty"`
	Text                 string `json:"text,omitempty"`
	FileUID              string `json:"file_uid,omitempty"`
	Label                string `json:"label,omitempty"`
	ChatName             string `json:"chat_name,omitempty"`
	AttachmentTemplateID int64  `json:"attachment_template_id,omitempty"`
}

// Send posts msg to the endpoint its address selects. A message that the
// provider would refuse for its shape (see ValidateMessage) is refused here
// without a request, which saves an API call.
func (t *Timelines) Send(ctx context.Context, msg Message) (Receipt, error) {
	if perr := refuseInvalid(msg, TimelinesCapabilities()); perr != nil {
		return Receipt{}, perr
	}

	body := sendBody{
		Text:                 msg.Text,
		FileUID:              msg.FileUID,
		Label:                msg.Label,
		ChatName:             msg.ChatName,
		AttachmentTemplateID: msg.AttachmentTemplateID,
	}
	var path string
	switch {
	case msg.Phone != "":
		path = "/messages"
		body.Phone = msg.Phone
		body.WhatsAppAccountPhone = msg.AccountPhone
	case msg.ChatID != 0:
		// The chat belongs to an account already: no whatsapp_account_phone.
		path = "/chats/" + strconv.FormatInt(msg.ChatID, 10) + "/messages"
		body.ReplyTo = msg.ReplyTo
	default:
		path = "/messages/to_jid"
		body.JID = msg.JID
		body.WhatsAppAccountPhone = msg.AccountPhone
		body.ReplyTo = msg.ReplyTo
	}
	payload, err := json.Marshal(body)
	if err != nil { // cannot happen for this struct; kept as a value, not a panic
		return Receipt{}, t.seal(&Error{Kind: Invalid, Op: OpSend, Message: "encoding the message", Err: err})
	}

	ans, perr := t.do(ctx, request{op: OpSend, method: http.MethodPost, path: path, body: payload, mayHaveEffect: true})
	if perr != nil {
		return Receipt{}, perr
	}

	var ok struct {
		Status string `json:"status"`
		Data   struct {
			MessageUID string `json:"message_uid"`
		} `json:"data"`
	}
	if json.Unmarshal(ans.body, &ok) == nil && ok.Data.MessageUID != "" {
		return Receipt{MessageUID: ok.Data.MessageUID, AnsweredAt: ans.at}, nil
	}
	// A 2xx carrying the provider's error envelope with a code is an error
	// like any other; without one the provider said "accepted" in a way we
	// cannot read, so the message may well be on its way.
	if e := classifyErrorCode(OpSend, ans); e != nil {
		return Receipt{}, t.seal(e)
	}
	return Receipt{}, t.seal(&Error{
		Kind:       Unconfirmed,
		Op:         OpSend,
		HTTPStatus: ans.status,
		Message:    "the provider accepted the request but its answer has no message_uid",
	})
}

// StatusHistory reads GET /messages/{uid}/status_history, oldest first. An
// entry whose timestamp cannot be read keeps its status with a zero At, and
// comes last.
func (t *Timelines) StatusHistory(ctx context.Context, messageUID string) ([]StatusEvent, error) {
	if messageUID == "" {
		return nil, &Error{Kind: Invalid, Op: OpStatusHistory, Message: "empty message UID"}
	}
	ans, perr := t.do(ctx, request{
		op:     OpStatusHistory,
		method: http.MethodGet,
		path:   "/messages/" + url.PathEscape(messageUID) + "/status_history",
	})
	if perr != nil {
		return nil, perr
	}

	var doc struct {
		Data []struct {
			Status    string `json:"status"`
			Timestamp string `json:"timestamp"`
		} `json:"data"`
	}
	if err := json.Unmarshal(ans.body, &doc); err != nil {
		return nil, t.seal(unreadable(OpStatusHistory, ans.status, err))
	}
	events := make([]StatusEvent, 0, len(doc.Data))
	for _, d := range doc.Data {
		// A time the client cannot read does not lose the status: it is
		// kept with a zero time, which the caller replaces with the time
		// its poll saw it (the facts sheet documents no format here).
		at, _ := ParseTimestamp(d.Timestamp)
		events = append(events, StatusEvent{Status: d.Status, At: at})
	}
	// The provider's order is not documented; sort so that callers can rely
	// on it, keeping the provider's order for equal timestamps. Events
	// without a time go last: their caller stamps them with the poll's
	// time, the latest of all.
	slices.SortStableFunc(events, func(a, b StatusEvent) int {
		if a.At.IsZero() || b.At.IsZero() {
			return compareBool(a.At.IsZero(), b.At.IsZero())
		}
		return a.At.Compare(b.At)
	})
	return events, nil
}

// Quota reads the workspace's quotas from GET /quotas, or from
// GET /workspace/quotas when the first answers 404 (and from then on).
func (t *Timelines) Quota(ctx context.Context) (Quota, error) {
	index := t.quotaPathIndex.Load()
	ans, perr := t.do(ctx, request{op: OpQuota, method: http.MethodGet, path: quotaPaths[index]})
	if perr != nil && perr.Kind == NotFound && perr.HTTPStatus == http.StatusNotFound {
		other := 1 - index
		var otherErr *Error
		ans, otherErr = t.do(ctx, request{op: OpQuota, method: http.MethodGet, path: quotaPaths[other]})
		switch {
		case otherErr == nil:
			t.quotaPathIndex.Store(other)
			perr = nil
		case otherErr.Kind == NotFound && otherErr.HTTPStatus == http.StatusNotFound:
			otherErr.Message = fmt.Sprintf("neither %s nor %s exists", quotaPaths[index], quotaPaths[other])
			perr = otherErr
		default:
			perr = otherErr
		}
	}
	if perr != nil {
		return Quota{}, perr
	}

	var doc struct {
		Data struct {
			Messaging    quotaBlock `json:"messaging_quota"`
			APICalls     quotaBlock `json:"api_calls_quota"`
			NonRecurring struct {
				RemainingBalance flexInt `json:"remaining_balance"`
			} `json:"non_recurring_quota"`
		} `json:"data"`
	}
	if err := json.Unmarshal(ans.body, &doc); err != nil {
		return Quota{}, t.seal(unreadable(OpQuota, ans.status, err))
	}
	d := doc.Data
	return Quota{
		MessagingTotal:      int64(d.Messaging.Total),
		MessagingUsed:       int64(d.Messaging.Used),
		MessagingPeriodEnd:  time.Time(d.Messaging.PeriodEnd),
		NonRecurringBalance: int64(d.NonRecurring.RemainingBalance),
		APICallsTotal:       int64(d.APICalls.Total),
		APICallsUsed:        int64(d.APICalls.Used),
		APICallsPeriodEnd:   time.Time(d.APICalls.PeriodEnd),
	}, nil
}

// quotaBlock is one of the quota objects of GET /quotas.
type quotaBlock struct {
	Total     flexInt   `json:"total"`
	Used      flexInt   `json:"used"`
	PeriodEnd flexiTime `json:"period_end"`
}

// compareBool orders false before true.
func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case b:
		return -1
	}
	return 1
}
