package sandbox

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// chat is a conversation of one account with one recipient. The sandbox
// creates one when an account first messages a recipient (or a recipient
// first writes to an account, see Receive).
type chat struct {
	id        int64
	sender    string // the account's phone
	recipient string // E.164 phone, or a group's JID
	jid       string
	name      string // the first chat_name a send gave it; "": the recipient
	createdAt time.Time
	entries   []chatEntry // its history, in the order the sandbox took the messages
}

type chatKey struct{ sender, recipient string }

// chatEntry is one message of a chat's history: one the account sent (sent
// set), or one it received.
type chatEntry struct {
	uid  string
	at   time.Time // when the provider took it: a send's ReceivedAt
	sent *record
	text string // a received message's text
}

func (s *Server) chatLocked(id int64) *chat {
	if id < 1 || id > int64(len(s.chats)) {
		return nil
	}
	return s.chats[id-1]
}

// chatForLocked returns the chat of sender with recipient, creating it.
func (s *Server) chatForLocked(sender, recipient string, now time.Time) *chat {
	key := chatKey{sender, recipient}
	if c, ok := s.chatByKey[key]; ok {
		return c
	}
	c := &chat{id: int64(len(s.chats)) + 1, sender: sender, recipient: recipient, jid: jidOf(recipient), createdAt: now}
	s.chats = append(s.chats, c)
	s.chatByKey[key] = c
	return c
}

// addSentLocked puts an accepted message into its chat's history.
func (s *Server) addSentLocked(rec *record) {
	c := s.chatLocked(rec.msg.Chat)
	if c == nil {
		return
	}
	if c.name == "" {
		c.name = rec.msg.ChatName
	}
	c.entries = append(c.entries, chatEntry{uid: rec.msg.UID, at: rec.msg.ReceivedAt, sent: rec})
}

// Receive records a message that the phone from wrote to the workspace's
// account (a reply, a STOP): it shows in their chat's history with from_me
// false, at the sandbox's now. account "" means the default sender. It
// returns the message's UID, or false when a phone is unreadable or the
// account is not one of the workspace's.
func (s *Server) Receive(account, from, text string) (string, bool) {
	phone, ok := s.normalizePhone(from)
	if !ok {
		return "", false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sender, problem := s.resolveSenderLocked(account)
	if problem != nil || sender == "" {
		return "", false
	}
	now := s.now()
	c := s.chatForLocked(sender, phone, now)
	entry := chatEntry{uid: newUID(), at: now, text: text}
	c.entries = append(c.entries, entry)
	if s.cfg.Mode != ModeGateway {
		s.emitLocked(receivedEvent(c, entry))
	}
	s.changedLocked()
	return entry.uid, true
}

// messageObject is a message in the shape of GET /messages/{uid}, as chat
// histories list them too.
func (s *Server) messageObject(c *chat, e chatEntry, now time.Time) map[string]any {
	obj := map[string]any{
		"uid":          e.uid,
		"chat_id":      strconv.FormatInt(c.id, 10),
		"timestamp":    formatTime(e.at),
		"origin":       "WhatsApp",
		"message_type": "whatsapp",
	}
	if e.sent == nil {
		obj["sender_phone"], obj["recipient_phone"] = c.recipient, c.sender
		obj["from_me"], obj["text"], obj["has_attachment"] = false, e.text, false
		return obj
	}
	m := e.sent.snapshot(now, s.cfg)
	obj["sender_phone"], obj["recipient_phone"] = m.Sender, m.Recipient
	obj["from_me"], obj["text"], obj["status"] = true, m.Text, m.Status
	obj["has_attachment"] = m.FileUID != "" || m.AttachmentTemplateID != 0
	obj["origin"] = "Public API"
	return obj
}

// chatObject is a chat in the shape of GET /chats.
func chatObject(c *chat) map[string]any {
	name, phone := c.name, ""
	if strings.HasPrefix(c.recipient, "+") {
		phone = c.recipient
	}
	if name == "" {
		name = c.recipient
	}
	lastAt := c.createdAt
	if n := len(c.entries); n > 0 {
		lastAt = c.entries[n-1].at
	}
	account := ""
	if c.sender != "" {
		account = jidOf(c.sender)
	}
	return map[string]any{
		"id":                     c.id,
		"name":                   name,
		"phone":                  phone,
		"jid":                    c.jid,
		"is_group":               phone == "",
		"whatsapp_account_id":    account,
		"created_timestamp":      formatTime(c.createdAt),
		"last_message_timestamp": formatTime(lastAt),
	}
}

// chatFilter is the part of GET /chats's query the sandbox follows.
type chatFilter struct {
	phone   string // E.164; "": any
	account string // the account's phone; "": any
	page    int
}

// parseChatFilter reads GET /chats's query. Filters the sandbox does not
// know (label, responsible, read, ...) are ignored, as the real API has
// more of them than the sandbox keeps.
func (s *Server) parseChatFilter(q url.Values) (chatFilter, []fieldError) {
	var f chatFilter
	var problems []fieldError
	if v := q.Get("phone"); v != "" {
		var ok bool
		if f.phone, ok = s.normalizePhone(v); !ok {
			problems = append(problems, fieldError{Fields: []string{"phone"}, Msg: "must be a phone number in international format"})
		}
	}
	if v := q.Get("whatsapp_account_id"); v != "" {
		f.account = s.normalizeRecipient(v)
		if !strings.HasPrefix(f.account, "+") {
			problems = append(problems, fieldError{Fields: []string{"whatsapp_account_id"}, Msg: "must be a WhatsApp account ID such as 14840000000@s.whatsapp.net"})
		}
	}
	var problem *fieldError
	if f.page, problem = parsePage(q); problem != nil {
		problems = append(problems, *problem)
	}
	return f, problems
}

// chatsTarget reads what faults match on from GET /chats's filters.
func (s *Server) chatsTarget(req *apiRequest) {
	f, _ := s.parseChatFilter(req.r.URL.Query())
	req.account, req.recipient = f.account, f.phone
}

// handleChats answers GET /chats: the workspace's chats in the order they
// were created, PageSize a page.
func (s *Server) handleChats(req *apiRequest) reply {
	f, problems := s.parseChatFilter(req.r.URL.Query())
	if len(problems) > 0 {
		return validationReply(problems)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	matching := []*chat{}
	for _, c := range s.chats {
		if (f.phone == "" || c.recipient == f.phone) && (f.account == "" || c.sender == f.account) {
			matching = append(matching, c)
		}
	}
	chats, more := pageOf(matching, f.page, s.cfg.PageSize)
	list := make([]map[string]any, 0, len(chats))
	for _, c := range chats {
		list = append(list, chatObject(c))
	}
	return okReply(map[string]any{"chats": list, "has_more_pages": more})
}

// historyFilter is the query of GET /chats/{chat_id}/messages.
type historyFilter struct {
	fromMe        *bool
	after, before time.Time // inclusive; zero: unbounded
	ascending     bool
	page          int
}

// parseHistoryFilter reads GET /chats/{chat_id}/messages's query.
// after_message and before_message (UIDs) are not followed.
func parseHistoryFilter(q url.Values) (historyFilter, []fieldError) {
	var f historyFilter
	var problems []fieldError
	bad := func(name, msg string) { problems = append(problems, fieldError{Fields: []string{name}, Msg: msg}) }
	if v := q.Get("from_me"); v != "" {
		if b, err := strconv.ParseBool(v); err != nil {
			bad("from_me", "must be true or false")
		} else {
			f.fromMe = &b
		}
	}
	var ok bool
	if f.after, ok = parseTimeBound(q.Get("after"), false); !ok {
		bad("after", timeBoundHelp)
	}
	if f.before, ok = parseTimeBound(q.Get("before"), true); !ok {
		bad("before", timeBoundHelp)
	}
	switch q.Get("sorting_order") {
	case "", "desc":
	case "asc":
		f.ascending = true
	default:
		bad("sorting_order", "must be asc or desc")
	}
	var problem *fieldError
	if f.page, problem = parsePage(q); problem != nil {
		problems = append(problems, *problem)
	}
	return f, problems
}

func (f historyFilter) matches(e chatEntry) bool {
	if f.fromMe != nil && *f.fromMe != (e.sent != nil) {
		return false
	}
	return (f.after.IsZero() || !e.at.Before(f.after)) && (f.before.IsZero() || !e.at.After(f.before))
}

// chatMessagesTarget reads a chat's account and recipient for faults.
func (s *Server) chatMessagesTarget(req *apiRequest) {
	id, _ := strconv.ParseInt(req.r.PathValue("chat_id"), 10, 64)
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.chatLocked(id); c != nil {
		req.account, req.recipient = c.sender, c.recipient
	}
}

// handleChatMessages answers GET /chats/{chat_id}/messages: the chat's
// history, newest first unless sorting_order=asc (a chat is usually read
// from its latest message back), PageSize a page. A message is there from
// the moment the provider took it, its timestamp that moment.
func (s *Server) handleChatMessages(req *apiRequest) reply {
	id, err := strconv.ParseInt(req.r.PathValue("chat_id"), 10, 64)
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.chatLocked(id)
	if err != nil || c == nil {
		return errorReply(http.StatusNotFound, "", "Chat not found", nil)
	}
	f, problems := parseHistoryFilter(req.r.URL.Query())
	if len(problems) > 0 {
		return validationReply(problems)
	}
	matching := []chatEntry{}
	for _, e := range c.entries {
		if f.matches(e) {
			matching = append(matching, e)
		}
	}
	// Concurrent sends can be taken in another order than their stamps.
	slices.SortStableFunc(matching, func(a, b chatEntry) int { return a.at.Compare(b.at) })
	if !f.ascending {
		slices.Reverse(matching)
	}
	entries, more := pageOf(matching, f.page, s.cfg.PageSize)
	now := s.now()
	list := make([]map[string]any, 0, len(entries))
	for _, e := range entries {
		list = append(list, s.messageObject(c, e, now))
	}
	return okReply(map[string]any{"messages": list, "has_more_pages": more})
}

// timeBoundLayouts are the forms after and before accept (the facts sheet
// says "ISO date/datetime"). Those without a zone are read as UTC.
var timeBoundLayouts = []string{TimestampLayout, time.RFC3339Nano, "2006-01-02 15:04:05", "2006-01-02T15:04:05", time.DateOnly}

const timeBoundHelp = `must be a date or time: "2025-03-10", "2025-03-10 09:00:00", "2025-03-10T09:00:00Z" or "2025-03-10 09:00:00 +0200"`

// parseTimeBound reads an after or before bound; "" is no bound. A bare
// date as the upper bound includes its whole day.
func parseTimeBound(v string, upper bool) (time.Time, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}, true
	}
	for _, layout := range timeBoundLayouts {
		t, err := time.Parse(layout, v)
		if err != nil {
			continue
		}
		if layout == time.DateOnly && upper {
			t = t.AddDate(0, 0, 1).Add(-time.Nanosecond)
		}
		return t, true
	}
	return time.Time{}, false
}

// parsePage reads the page query parameter: 1 when absent.
func parsePage(q url.Values) (int, *fieldError) {
	v := q.Get("page")
	if v == "" {
		return 1, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, &fieldError{Fields: []string{"page"}, Msg: "must be a whole number from 1"}
	}
	return n, nil
}

// pageOf returns page (from 1) of items, size a page, and whether more
// pages follow.
func pageOf[T any](items []T, page, size int) ([]T, bool) {
	if pages := (len(items) + size - 1) / size; page < 1 || page > pages {
		return nil, false // compared as pages: (page-1)*size could overflow
	}
	start := (page - 1) * size
	end := min(start+size, len(items))
	return items[start:end], end < len(items)
}
