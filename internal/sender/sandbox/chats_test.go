package sandbox

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// chatView is a chat of GET /chats as a client reads it.
type chatView struct {
	ID            int64  `json:"id"`
	Name          string `json:"name"`
	Phone         string `json:"phone"`
	JID           string `json:"jid"`
	IsGroup       bool   `json:"is_group"`
	AccountID     string `json:"whatsapp_account_id"`
	Created       string `json:"created_timestamp"`
	LastMessageAt string `json:"last_message_timestamp"`
}

// listChats calls GET /chats with query and wants a 200.
func listChats(t *testing.T, ts *httptest.Server, query string) ([]chatView, bool) {
	t.Helper()
	r := call(t, ts, "GET", "/chats?"+query, nil)
	if r.status != http.StatusOK {
		t.Fatalf("GET /chats?%s: %d %s", query, r.status, r.body)
	}
	var v struct {
		Status string `json:"status"`
		Data   struct {
			Chats []chatView `json:"chats"`
			More  *bool      `json:"has_more_pages"`
		} `json:"data"`
	}
	if err := json.Unmarshal(r.body, &v); err != nil || v.Status != "ok" || v.Data.More == nil || v.Data.Chats == nil {
		t.Fatalf("GET /chats?%s: not the documented shape: %v %s", query, err, r.body)
	}
	return v.Data.Chats, *v.Data.More
}

// historyMessage is a message of a chat history as a client reads it.
type historyMessage struct {
	UID            string `json:"uid"`
	ChatID         string `json:"chat_id"`
	Timestamp      string `json:"timestamp"`
	SenderPhone    string `json:"sender_phone"`
	RecipientPhone string `json:"recipient_phone"`
	FromMe         bool   `json:"from_me"`
	Text           string `json:"text"`
	HasAttachment  bool   `json:"has_attachment"`
}

// chatHistory calls GET /chats/{id}/messages with query and wants a 200.
func chatHistory(t *testing.T, ts *httptest.Server, id int64, query string) ([]historyMessage, bool) {
	t.Helper()
	r := call(t, ts, "GET", fmt.Sprintf("/chats/%d/messages?%s", id, query), nil)
	if r.status != http.StatusOK {
		t.Fatalf("GET /chats/%d/messages?%s: %d %s", id, query, r.status, r.body)
	}
	var v struct {
		Data struct {
			Messages []historyMessage `json:"messages"`
			More     *bool            `json:"has_more_pages"`
		} `json:"data"`
	}
	if err := json.Unmarshal(r.body, &v); err != nil || v.Data.More == nil || v.Data.Messages == nil {
		t.Fatalf("chat history: not the documented shape: %v %s", err, r.body)
	}
	return v.Data.Messages, *v.Data.More
}

func texts(msgs []historyMessage) []string {
	out := []string{}
	for _, m := range msgs {
		out = append(out, m.Text)
	}
	return out
}

func TestChatsListAndFilters(t *testing.T) {
	a, b := "+14155550001", "+14155550002"
	clock := newClock()
	s, ts := start(t, Config{Credits: 20, Accounts: []string{a, b}, Now: clock.Now})
	call(t, ts, "POST", "/messages", map[string]any{"phone": "+14155550100", "text": "to Ann from a", "whatsapp_account_phone": a, "chat_name": "Ann"}).uid(t)
	clock.Advance(time.Minute)
	call(t, ts, "POST", "/messages", map[string]any{"phone": "+14155550100", "text": "to Ann from b", "whatsapp_account_phone": b}).uid(t)
	call(t, ts, "POST", "/messages", map[string]any{"phone": "+14155550200", "text": "to Bob", "whatsapp_account_phone": a}).uid(t)
	call(t, ts, "POST", "/messages/to_jid", map[string]any{"jid": "120363-111@g.us", "text": "to the group", "whatsapp_account_phone": a}).uid(t)
	clock.Advance(time.Minute)
	call(t, ts, "POST", "/chats/1/messages", map[string]any{"text": "again"}).uid(t)

	all, more := listChats(t, ts, "")
	if len(all) != 4 || more {
		t.Fatalf("GET /chats: %d chats, more %v; want 4 on one page", len(all), more)
	}
	t0 := newClock().Now()
	want := chatView{
		ID: 1, Name: "Ann", Phone: "+14155550100", JID: "14155550100@s.whatsapp.net", AccountID: "14155550001@s.whatsapp.net",
		Created: t0.Format(TimestampLayout), LastMessageAt: t0.Add(2 * time.Minute).Format(TimestampLayout),
	}
	if all[0] != want {
		t.Errorf("chat 1\n%+v\nwant\n%+v", all[0], want)
	}
	if g := all[3]; !g.IsGroup || g.Phone != "" || g.JID != "120363-111@g.us" || g.Name != "120363-111@g.us" {
		t.Errorf("group chat %+v", g)
	}

	ids := func(chats []chatView) []int64 {
		out := []int64{}
		for _, c := range chats {
			out = append(out, c.ID)
		}
		return out
	}
	for _, tt := range []struct {
		query string
		want  []int64
	}{
		{"phone=" + url.QueryEscape("+14155550100"), []int64{1, 2}},
		{"phone=" + url.QueryEscape("1 (415) 555-0100"), []int64{1, 2}}, // normalised like sends
		{"phone=14155550100&whatsapp_account_id=14155550002%40s.whatsapp.net", []int64{2}},
		{"whatsapp_account_id=14155550001@s.whatsapp.net", []int64{1, 3, 4}},
		{"phone=%2B14155550999", []int64{}},
		{"label=vip&read=false&phone=%2B14155550200", []int64{3}}, // unknown filters ignored
	} {
		got, _ := listChats(t, ts, tt.query)
		if !reflect.DeepEqual(ids(got), tt.want) {
			t.Errorf("GET /chats?%s: chats %v, want %v", tt.query, ids(got), tt.want)
		}
	}

	for _, bad := range []struct{ query, field string }{
		{"page=0", "page"}, {"page=two", "page"}, {"phone=not-a-phone", "phone"}, {"whatsapp_account_id=someone", "whatsapp_account_id"},
	} {
		r := call(t, ts, "GET", "/chats?"+bad.query, nil)
		if fe := r.fieldErrors(t); r.status != 400 || r.errorCode(t) != "validation_error" || len(fe) != 1 || fe[0].Fields[0] != bad.field {
			t.Errorf("GET /chats?%s: %d %s, want a 400 validation_error on %s", bad.query, r.status, r.body, bad.field)
		}
	}
	if n := len(s.Messages()); n != 5 {
		t.Errorf("listing changed the messages: %d", n)
	}
}

func TestChatsPaging(t *testing.T) {
	_, ts := start(t, Config{Credits: 100, PageSize: 2})
	for i := range 5 {
		call(t, ts, "POST", "/messages", text("+1415555020"+strconv.Itoa(i), "hi")).uid(t)
	}
	var got []int64
	for page, wantMore := range []bool{true, true, false} {
		chats, more := listChats(t, ts, "page="+strconv.Itoa(page+1))
		if more != wantMore {
			t.Errorf("page %d: has_more_pages %v, want %v", page+1, more, wantMore)
		}
		for _, c := range chats {
			got = append(got, c.ID)
		}
	}
	if !reflect.DeepEqual(got, []int64{1, 2, 3, 4, 5}) {
		t.Errorf("chats over three pages %v, want 1..5 once each", got)
	}
	if chats, more := listChats(t, ts, "page=4"); len(chats) != 0 || more {
		t.Errorf("page past the end: %d chats, more %v", len(chats), more)
	}
	if chats, more := listChats(t, ts, "page=9223372036854775807"); len(chats) != 0 || more {
		t.Errorf("huge page: %d chats, more %v", len(chats), more)
	}

	// The default page is the provider's 50.
	_, ts = start(t, Config{Credits: 100})
	for i := range 51 {
		call(t, ts, "POST", "/messages", text(fmt.Sprintf("+141555510%02d", i), "hi")).uid(t)
	}
	if chats, more := listChats(t, ts, ""); len(chats) != 50 || !more {
		t.Errorf("default page: %d chats, more %v; want 50 and more", len(chats), more)
	}
}

func TestChatHistory(t *testing.T) {
	a, ann := "+14155550001", "+14155550100"
	clock := newClock() // 09:00 at +02:00
	s, ts := start(t, Config{Credits: 20, Accounts: []string{a}, Now: clock.Now, PageSize: 3})
	first := call(t, ts, "POST", "/messages", map[string]any{"phone": ann, "text": "m1", "file_uid": "f1"}).uid(t)
	clock.Advance(time.Hour)
	call(t, ts, "POST", "/messages", text(ann, "m2")).uid(t)
	clock.Advance(30 * time.Minute)
	reply, ok := s.Receive("", "1 415 555 0100", "STOP")
	if !ok {
		t.Fatal("Receive refused a reply from a known chat")
	}
	clock.Advance(30 * time.Minute)
	call(t, ts, "POST", "/messages", text(ann, "m3")).uid(t)

	all, more := chatHistory(t, ts, 1, "")
	if !reflect.DeepEqual(texts(all), []string{"m3", "STOP", "m2"}) || !more {
		t.Errorf("default history %v (more %v), want newest first, a page of 3 and more", texts(all), more)
	}
	rest, more := chatHistory(t, ts, 1, "page=2")
	if !reflect.DeepEqual(texts(rest), []string{"m1"}) || more {
		t.Errorf("page 2: %v (more %v), want m1 and no more", texts(rest), more)
	}
	wantFirst := historyMessage{UID: first, ChatID: "1", Timestamp: "2025-03-10 09:00:00 +0200", SenderPhone: a,
		RecipientPhone: ann, FromMe: true, Text: "m1", HasAttachment: true}
	if rest[0] != wantFirst {
		t.Errorf("message object\n%+v\nwant\n%+v", rest[0], wantFirst)
	}
	if got := all[1]; got.UID != reply || got.FromMe || got.SenderPhone != ann || got.RecipientPhone != a {
		t.Errorf("received message %+v", got)
	}

	m2 := "2025-03-10 10:00:00 +0200" // m2's timestamp, in every accepted form
	for _, tt := range []struct {
		query string
		want  []string
	}{
		{"sorting_order=asc", []string{"m1", "m2", "STOP"}},
		{"from_me=true&sorting_order=asc", []string{"m1", "m2", "m3"}},
		{"from_me=false", []string{"STOP"}},
		{"after=" + url.QueryEscape(m2) + "&sorting_order=asc", []string{"m2", "STOP", "m3"}},
		{"after=2025-03-10T08:00:00Z&sorting_order=asc", []string{"m2", "STOP", "m3"}},
		{"after=" + url.QueryEscape("2025-03-10 08:00:00") + "&sorting_order=asc", []string{"m2", "STOP", "m3"}},
		{"after=2025-03-10T08:00:01Z&from_me=true", []string{"m3"}},
		{"before=" + url.QueryEscape(m2) + "&sorting_order=desc", []string{"m2", "m1"}},
		{"after=2025-03-10&before=2025-03-10&from_me=true&sorting_order=asc", []string{"m1", "m2", "m3"}},
		{"before=2025-03-09", []string{}},
		{"after_message=x&unknown=1&from_me=false", []string{"STOP"}},
	} {
		got, _ := chatHistory(t, ts, 1, tt.query)
		if !reflect.DeepEqual(texts(got), tt.want) {
			t.Errorf("?%s: %v, want %v", tt.query, texts(got), tt.want)
		}
	}

	for _, bad := range []struct{ query, field string }{
		{"from_me=maybe", "from_me"}, {"after=yesterday", "after"}, {"before=10%2F03%2F2025", "before"},
		{"sorting_order=up", "sorting_order"}, {"page=-1", "page"},
	} {
		r := call(t, ts, "GET", "/chats/1/messages?"+bad.query, nil)
		if fe := r.fieldErrors(t); r.status != 400 || len(fe) != 1 || fe[0].Fields[0] != bad.field {
			t.Errorf("?%s: %d %s, want a 400 on %s", bad.query, r.status, r.body, bad.field)
		}
	}
	for _, path := range []string{"/chats/2/messages", "/chats/0/messages", "/chats/abc/messages"} {
		r := call(t, ts, "GET", path, nil)
		if r.status != 404 || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") || !strings.Contains(string(r.body), "Chat not found") {
			t.Errorf("GET %s: %d %q %s, want the JSON 404", path, r.status, r.header.Get("Content-Type"), r.body)
		}
	}
}

func TestReceive(t *testing.T) {
	a := "+14155550001"
	s, ts := start(t, Config{Accounts: []string{a}})
	r := callWithAuth(t, ts, "POST", "/_sandbox/receive", "", map[string]any{"phone": "+14155550100", "text": "hello?"})
	if r.status != 200 || !strings.Contains(string(r.body), `"uid"`) {
		t.Fatalf("POST /_sandbox/receive: %d %s", r.status, r.body)
	}
	chats, _ := listChats(t, ts, "phone=%2B14155550100")
	if len(chats) != 1 || chats[0].AccountID != "14155550001@s.whatsapp.net" {
		t.Fatalf("a received message's chat: %+v", chats)
	}
	if got, _ := chatHistory(t, ts, chats[0].ID, "from_me=false"); len(got) != 1 || got[0].Text != "hello?" {
		t.Errorf("history %+v", got)
	}
	if len(s.Messages()) != 0 || s.CreditsUsed() != 0 {
		t.Error("a received message counted as sent")
	}
	for _, body := range []map[string]any{{"phone": "nope"}, {"phone": "+14155550100", "account": "+14155550009"}, {}} {
		if r := callWithAuth(t, ts, "POST", "/_sandbox/receive", "", body); r.status != 400 {
			t.Errorf("POST /_sandbox/receive %v: %d, want 400", body, r.status)
		}
	}
}

func TestChatsAreAPICalls(t *testing.T) {
	s, ts := start(t, Config{Credits: 5, APICalls: 3})
	call(t, ts, "POST", "/messages", text("+14155550100", "hi")).uid(t)
	listChats(t, ts, "")
	chatHistory(t, ts, 1, "")
	if used := s.APICallsUsed(); used != 3 {
		t.Errorf("API calls used %d, want 3", used)
	}
	if r := call(t, ts, "GET", "/chats", nil); r.status != 403 || r.errorCode(t) != "quota_exceeded" {
		t.Errorf("over the API-call quota: %d %s", r.status, r.body)
	}
	for _, path := range []string{"/chats", "/chats/1/messages"} {
		for _, auth := range []string{"", "Bearer wrong"} {
			if r := callWithAuth(t, ts, "GET", path, auth, nil); r.status != 401 {
				t.Errorf("GET %s with %q: %d, want 401", path, auth, r.status)
			}
		}
	}
}

func TestChatsFaults(t *testing.T) {
	s, ts := start(t, Config{Credits: 5})
	call(t, ts, "POST", "/messages", text("+14155550100", "to Ann")).uid(t)
	call(t, ts, "POST", "/messages", text("+14155550200", "to Bob")).uid(t)
	s.Inject(Fault{Op: OpChats, Phone: "+14155550100", Status: 503, Body: "<html>down</html>", ContentType: "text/html"})

	if r := call(t, ts, "GET", "/chats?phone=%2B14155550100", nil); r.status != 503 {
		t.Errorf("GET /chats for the faulty phone: %d", r.status)
	}
	if r := call(t, ts, "GET", "/chats/1/messages", nil); r.status != 503 {
		t.Errorf("history of the faulty phone's chat: %d", r.status)
	}
	if got, _ := chatHistory(t, ts, 2, ""); !reflect.DeepEqual(texts(got), []string{"to Bob"}) {
		t.Errorf("another chat's history %v", texts(got))
	}
	if r := call(t, ts, "POST", "/messages", text("+14155550100", "again")); r.status != 200 {
		t.Errorf("a chats fault hit a send: %d", r.status)
	}
}

// TestProcessedFaultsLeaveTheMessageInTheChat: a send the provider accepted
// and then failed to answer is in the chat history, where reconciliation
// looks for it; one refused before processing is not.
func TestProcessedFaultsLeaveTheMessageInTheChat(t *testing.T) {
	const ann = "+14155550100"
	tests := []struct {
		name       string
		fault      Fault
		timeout    time.Duration // the client's; 0: none
		wantStatus int           // 0: no answer at all
		wantHTML   bool
		wantInChat bool
	}{
		{"502 HTML after processing", Fault{Process: true, Status: 502, Body: "<html><h1>502 Bad Gateway</h1></html>", ContentType: "text/html"}, 0, 502, true, true},
		{"503 HTML after processing", Fault{Process: true, Status: 503, Body: "<html>maintenance</html>", ContentType: "text/html"}, 0, 503, true, true},
		{"connection reset after processing", Fault{Process: true, Drop: true}, 0, 0, false, true},
		{"answer later than the client waits", Fault{Process: true, Delay: time.Hour}, 300 * time.Millisecond, 0, false, true},
		{"502 HTML without processing", Fault{Status: 502, Body: "<html>bad gateway</html>", ContentType: "text/html"}, 0, 502, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ts := start(t, Config{Credits: 5, Accounts: []string{"+14155550001"}})
			tt.fault.Op, tt.fault.Times = OpSend, 1
			s.Inject(tt.fault)

			client := ts.Client()
			client.Timeout = tt.timeout
			req, _ := http.NewRequest("POST", ts.URL+"/messages", strings.NewReader(`{"phone":"`+ann+`","text":"maybe sent"}`))
			req.Header.Set("Authorization", "Bearer "+testToken)
			resp, err := client.Do(req)
			switch {
			case tt.wantStatus == 0 && err == nil:
				resp.Body.Close()
				t.Fatalf("got an answer %d, want none", resp.StatusCode)
			case tt.wantStatus != 0 && err != nil:
				t.Fatalf("no answer (%v), want %d", err, tt.wantStatus)
			case tt.wantStatus != 0:
				resp.Body.Close()
				isHTML := strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html")
				if resp.StatusCode != tt.wantStatus || isHTML != tt.wantHTML {
					t.Errorf("answer %d %q, want %d HTML %v", resp.StatusCode, resp.Header.Get("Content-Type"), tt.wantStatus, tt.wantHTML)
				}
			}

			chats, _ := listChats(t, ts, "phone="+url.QueryEscape(ann)+"&whatsapp_account_id=14155550001%40s.whatsapp.net")
			if !tt.wantInChat {
				if len(chats) != 0 || len(s.Messages()) != 0 {
					t.Errorf("an unprocessed send left chats %+v and messages %d", chats, len(s.Messages()))
				}
				return
			}
			if len(chats) != 1 {
				t.Fatalf("chats %+v, want the one the processed send made", chats)
			}
			history, _ := chatHistory(t, ts, chats[0].ID, "from_me=true")
			msgs := s.Messages()
			if len(history) != 1 || len(msgs) != 1 || history[0].UID != msgs[0].UID || history[0].Text != "maybe sent" {
				t.Errorf("history %+v, recorded %+v: want the accepted message in both", history, msgs)
			}
		})
	}
}
