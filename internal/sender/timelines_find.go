package sender

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

var _ MessageFinder = (*Timelines)(nil)

const (
	// maxFindPages bounds the pages, of chats and of histories together, that
	// one FindSent call reads: each is an API call from the monthly budget,
	// and a huge chat must not make one lookup unbounded.
	maxFindPages = 20

	// afterMargin is how much earlier than SentQuery.After the after bound
	// sent to the API is. The API documents after as an "ISO date/datetime"
	// without saying how it reads a zone; UTC offsets span -12h to +14h, so
	// whatever zone it assumes, the bound still includes After. FindSent
	// filters to After itself.
	afterMargin = 14 * time.Hour
)

// FindSent looks up the messages the account sent to q.Phone at or after
// q.After: GET /chats?phone=… (with whatsapp_account_id, the account's JID,
// when q.AccountPhone is set), or the one chat q.ChatID, then each chat's
// GET /chats/{id}/messages?from_me=true&after=…&sorting_order=asc, following
// has_more_pages. after goes out as RFC 3339 in UTC (see afterMargin).
// Every request waits for the CallLimiter like any other call; errors carry
// Op OpFindSent. The messages come oldest first.
//
// When a request fails, or the lookup reaches maxFindPages pages with more
// to read (a Transient error), FindSent returns the messages found so far
// with the error: a caller that finds its message among them may take it,
// one that does not must not conclude that it was not sent.
func (t *Timelines) FindSent(ctx context.Context, q SentQuery) ([]SentMessage, error) {
	account, ok := e164Digits(q.AccountPhone)
	if q.AccountPhone != "" && !ok {
		return nil, &Error{Kind: Invalid, Op: OpFindSent, Message: fmt.Sprintf("not an account phone number: %q", q.AccountPhone)}
	}
	pages := maxFindPages
	chats := []int64{q.ChatID}
	if q.ChatID <= 0 {
		phone, ok := e164Digits(q.Phone)
		if !ok {
			return nil, &Error{Kind: Invalid, Op: OpFindSent, Message: fmt.Sprintf("not a phone number: %q", q.Phone)}
		}
		var perr *Error
		if chats, perr = t.findChats(ctx, phone, account, &pages); perr != nil {
			return nil, perr
		}
	}
	var found []SentMessage
	for _, chatID := range chats {
		msgs, perr := t.sentInChat(ctx, chatID, account, q.After, &pages)
		found = append(found, msgs...)
		if perr != nil {
			return found, perr
		}
	}
	slices.SortStableFunc(found, func(a, b SentMessage) int { return a.At.Compare(b.At) })
	return found, nil
}

// findChats lists the ids of the chats with phone (digits), of account
// (digits; "" any). It checks the chats' phone and account itself too, in
// case the API reads its filters more loosely than they were meant.
func (t *Timelines) findChats(ctx context.Context, phone, account string, pages *int) ([]int64, *Error) {
	query := url.Values{"phone": {"+" + phone}}
	if account != "" {
		query.Set("whatsapp_account_id", account+"@s.whatsapp.net")
	}
	var ids []int64
	for page := 1; ; page++ {
		var doc struct {
			Data struct {
				Chats []struct {
					ID        flexInt `json:"id"`
					Phone     string  `json:"phone"`
					AccountID string  `json:"whatsapp_account_id"`
				} `json:"chats"`
				HasMorePages bool `json:"has_more_pages"`
			} `json:"data"`
		}
		if perr := t.getPage(ctx, "/chats", query, page, pages, &doc); perr != nil {
			return ids, perr
		}
		for _, c := range doc.Data.Chats {
			id := int64(c.ID)
			if id <= 0 || slices.Contains(ids, id) || !sameNumber(c.Phone, phone) || (account != "" && !sameNumber(c.AccountID, account)) {
				continue
			}
			ids = append(ids, id)
		}
		if !doc.Data.HasMorePages || len(doc.Data.Chats) == 0 {
			return ids, nil
		}
	}
}

// sentMessageDoc is a message object of a chat history (the shape of
// GET /messages/{uid}); fields FindSent does not use are ignored.
type sentMessageDoc struct {
	UID           string   `json:"uid"`
	Timestamp     string   `json:"timestamp"`
	SenderPhone   string   `json:"sender_phone"`
	FromMe        flexBool `json:"from_me"`
	Text          string   `json:"text"`
	HasAttachment flexBool `json:"has_attachment"`
}

// sentInChat reads a chat's messages from the account at or after after.
func (t *Timelines) sentInChat(ctx context.Context, chatID int64, account string, after time.Time, pages *int) ([]SentMessage, *Error) {
	query := url.Values{"from_me": {"true"}, "sorting_order": {"asc"}}
	if !after.IsZero() {
		query.Set("after", after.Add(-afterMargin).UTC().Format(time.RFC3339))
	}
	var found []SentMessage
	for page := 1; ; page++ {
		var doc struct {
			Data struct {
				Messages     []sentMessageDoc `json:"messages"`
				HasMorePages bool             `json:"has_more_pages"`
			} `json:"data"`
		}
		path := "/chats/" + strconv.FormatInt(chatID, 10) + "/messages"
		if perr := t.getPage(ctx, path, query, page, pages, &doc); perr != nil {
			return found, perr
		}
		for _, d := range doc.Data.Messages {
			m, keep, err := d.sentMessage(account, after)
			if err != nil {
				return found, t.seal(unreadable(OpFindSent, http.StatusOK, err))
			}
			if keep {
				found = append(found, m)
			}
		}
		if !doc.Data.HasMorePages || len(doc.Data.Messages) == 0 {
			return found, nil
		}
	}
}

// sentMessage turns d into a SentMessage, and says whether it is one the
// query asked for: sent (from_me; a message without the field is taken as
// the API's answer to from_me=true), by account when given, at or after
// after.
func (d sentMessageDoc) sentMessage(account string, after time.Time) (SentMessage, bool, error) {
	at, err := ParseTimestamp(d.Timestamp)
	if err != nil {
		return SentMessage{}, false, fmt.Errorf("message %s: %w", d.UID, err)
	}
	m := SentMessage{UID: d.UID, Text: d.Text, At: at, HasAttachment: d.HasAttachment.value}
	if digits, ok := e164Digits(d.SenderPhone); ok {
		m.AccountPhone = "+" + digits
	}
	keep := d.UID != "" && (!d.FromMe.set || d.FromMe.value) &&
		(account == "" || sameNumber(d.SenderPhone, account)) && !at.Before(after)
	return m, keep, nil
}

// getPage reads one page of a listing into doc, spending one of pages.
func (t *Timelines) getPage(ctx context.Context, path string, query url.Values, page int, pages *int, doc any) *Error {
	if *pages <= 0 {
		return &Error{Kind: Transient, Op: OpFindSent, Message: fmt.Sprintf("lookup stopped after %d pages with more to read (%s)", maxFindPages, path)}
	}
	*pages--
	query.Set("page", strconv.Itoa(page))
	ans, perr := t.do(ctx, request{op: OpFindSent, method: http.MethodGet, path: path + "?" + query.Encode()})
	if perr != nil {
		return perr
	}
	if err := json.Unmarshal(ans.body, doc); err != nil {
		return t.seal(unreadable(OpFindSent, ans.status, err))
	}
	return nil
}

// e164Digits returns the digits of a phone number or a JID
// ("14155550100@s.whatsapp.net"), and false unless there are 7 to 15 of
// them (the provider's rule for phone numbers).
func e164Digits(s string) (string, bool) {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "@")
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case strings.ContainsRune("+ -().", r):
		default:
			return "", false
		}
	}
	return b.String(), b.Len() >= 7 && b.Len() <= 15
}

// sameNumber reports whether a phone or JID the API gave is the number
// digits, or says nothing (""): the API's filter then stands.
func sameNumber(given, digits string) bool {
	if strings.TrimSpace(given) == "" {
		return true
	}
	d, ok := e164Digits(given)
	return ok && d == digits
}

// flexBool is a boolean that may come as true/false, "true"/"false" or 1/0;
// set says whether the field was there at all.
type flexBool struct{ value, set bool }

func (f *flexBool) UnmarshalJSON(b []byte) error {
	s := strings.Trim(strings.TrimSpace(string(b)), `"`)
	if s == "null" || s == "" {
		*f = flexBool{}
		return nil
	}
	v, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("not a boolean: %s", b)
	}
	*f = flexBool{value: v, set: true}
	return nil
}
