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

// Operation names carried in Error.Op.
const (
	OpSend          = "send"
	OpStatusHistory = "status_history"
	OpQuota         = "quota"
	OpFindSent      = "find_sent" // the requests of a FindSent lookup
)

// The provider documents the quota endpoint under two paths (the overview
// says /quotas, the reference page /workspace/quotas). The client starts with
// the first and falls back to the other on a 404, remembering what worked.
var quotaPaths = [2]string{"/quotas", "/workspace/quotas"}

const (
	defaultTimeout   = 30 * time.Second
	idleConnTimeout  = 20 * time.Second
	defaultUserAgent = "wacampaign (+https://github.com/wacampaign/wacampaign)"
	// maxResponseBody caps what is read of any answer: the API's answers are
	// small, and a proxy's error page must not fill memory.
	maxResponseBody = 1 << 20
)

// CallLimiter paces API calls. Timelines calls Wait before every HTTP request
// it makes (sends, status polls, quota reads, each page of a FindSent
// lookup), so a shared ceiling on API calls can plug in here.
//
// An error from Wait stops the call before anything is sent. A *Error is
// returned to the caller as it is; an error with a RetryAfter() time.Duration
// method becomes a RateLimited *Error carrying that wait; any other error
// becomes a Transient *Error wrapping it.
type CallLimiter interface {
	Wait(ctx context.Context) error
}

// TimelinesOption configures a Timelines client.
type TimelinesOption func(*Timelines)

// WithBaseURL sets the API root (default DefaultTimelinesBaseURL), for
// example a sandbox server's URL.
func WithBaseURL(baseURL string) TimelinesOption {
	return func(t *Timelines) { t.baseURL = trimTrailingSlashes(baseURL) }
}

// WithHTTPClient sets the HTTP client. The default one does not follow
// redirects: an API answer is never a redirect, and following one would turn
// a POST into a GET.
func WithHTTPClient(c *http.Client) TimelinesOption {
	return func(t *Timelines) {
		if c != nil {
			t.httpClient = c
		}
	}
}

// WithTimeout bounds each HTTP request, from before connecting to the end of
// reading the answer (default 30s). Zero or negative keeps the default.
func WithTimeout(d time.Duration) TimelinesOption {
	return func(t *Timelines) {
		if d > 0 {
			t.timeout = d
		}
	}
}

// WithCallLimiter makes every HTTP request wait for l first.
func WithCallLimiter(l CallLimiter) TimelinesOption {
	return func(t *Timelines) { t.limiter = l }
}

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) TimelinesOption {
	return func(t *Timelines) {
		if ua != "" {
			t.userAgent = ua
		}
	}
}

// Timelines is the Provider for the TimelinesAI Public API. It is safe for
// concurrent use.
type Timelines struct {
	token      string
	baseURL    string
	httpClient *http.Client
	timeout    time.Duration
	limiter    CallLimiter
	userAgent  string

	// quotaPathIndex indexes quotaPaths: the quota path that answered last.
	quotaPathIndex atomic.Int32
}

var _ Provider = (*Timelines)(nil)

// NewTimelines returns a client that authenticates with token.
func NewTimelines(token string, opts ...TimelinesOption) *Timelines {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	// A kept-alive connection that the server closed while idle fails a
	// POST in a way that looks like "written, then dropped" (Unconfirmed).
	// Retiring idle connections well before servers do keeps that rare.
	transport.IdleConnTimeout = idleConnTimeout
	// A worker sends from many goroutines to one host; Go's default keeps
	// two idle connections per host and opens a new one for every other
	// request, which costs both ends a TCP handshake per message.
	transport.MaxIdleConnsPerHost = 64
	transport.MaxIdleConns = 128
	t := &Timelines{
		token:   token,
		baseURL: DefaultTimelinesBaseURL,
		httpClient: &http.Client{
			Transport:     transport,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		timeout:   defaultTimeout,
		userAgent: defaultUserAgent,
	}
	for _, opt := range opts {
		opt(t)
	}
	return t
}

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
	if fields := ValidateMessage(msg); len(fields) > 0 {
		return Receipt{}, &Error{
			Kind:    Invalid,
			Op:      OpSend,
			Code:    "validation_error",
			Message: "message refused before sending",
			Fields:  fields,
		}
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
		return Receipt{MessageUID: ok.Data.MessageUID}, nil
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

// StatusHistory reads GET /messages/{uid}/status_history, oldest first.
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
		at, err := ParseTimestamp(d.Timestamp)
		if err != nil {
			return nil, t.seal(unreadable(OpStatusHistory, ans.status, err))
		}
		events = append(events, StatusEvent{Status: d.Status, At: at})
	}
	// The provider's order is not documented; sort so that callers can rely
	// on it, keeping the provider's order for equal timestamps.
	slices.SortStableFunc(events, func(a, b StatusEvent) int { return a.At.Compare(b.At) })
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

func unreadable(op string, status int, err error) *Error {
	return &Error{
		Kind:       Transient,
		Op:         op,
		HTTPStatus: status,
		Message:    "unreadable answer: " + err.Error(),
		Err:        err,
	}
}

func trimTrailingSlashes(s string) string {
	for len(s) > 0 && s[len(s)-1] == '/' {
		s = s[:len(s)-1]
	}
	return s
}
