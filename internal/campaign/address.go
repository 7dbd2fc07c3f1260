package campaign

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/wacampaign/wacampaign/internal/sender"
)

// Recipients are addressed by a key column of their row: a phone, a
// WhatsApp JID (a contact's, 14155550100@s.whatsapp.net, or a group's,
// …@g.us) or a TimelinesAI chat id. A file may have several key columns
// (phone and jid, say, for a list of people and groups): a row's key is
// its first one that is filled, in the order phone, jid, chat_id, and the
// others are template fields like any column. A provider addresses only
// the kinds its capabilities name (the gateway: phones and JIDs).

// Kind is how a recipient is addressed.
type Kind string

const (
	KindPhone  Kind = "phone"   // POST /messages; the gateway's <digits>@s.whatsapp.net
	KindJID    Kind = "jid"     // POST /messages/to_jid; the gateway's chat_jid
	KindChatID Kind = "chat_id" // POST /chats/{chat_id}/messages
)

// keyKinds are the kinds in the order a row's key is taken.
var keyKinds = []Kind{KindPhone, KindJID, KindChatID}

// keyColumn is a column that may hold a row's key.
type keyColumn struct {
	index int
	kind  Kind
}

// findKeyColumns lists the key columns of columns (normalised names), in
// the order a row's key is taken: the phone column (see phoneColumnNames),
// then jid, then chat_id.
func findKeyColumns(columns []string) []keyColumn {
	var keys []keyColumn
	if i := phoneColumn(columns); i >= 0 {
		keys = append(keys, keyColumn{i, KindPhone})
	}
	for _, k := range []Kind{KindJID, KindChatID} {
		if i := indexOf(columns, string(k)); i >= 0 {
			keys = append(keys, keyColumn{i, k})
		}
	}
	return keys
}

// keyColumnsNamed answers the key columns a campaign stored by name
// (fKeyColumns, or, for a campaign from before recipient kinds, its phone
// column).
func keyColumnsNamed(columns, names []string) []keyColumn {
	var keys []keyColumn
	for _, name := range names {
		i := indexOf(columns, name)
		if i < 0 {
			continue
		}
		kind := KindPhone
		if name == string(KindJID) || name == string(KindChatID) {
			kind = Kind(name)
		}
		keys = append(keys, keyColumn{i, kind})
	}
	return keys
}

// addressable says whether a provider with caps can address kind.
func addressable(caps sender.Capabilities, kind Kind) bool {
	switch kind {
	case KindPhone:
		return caps.AddressByPhone
	case KindJID:
		return caps.AddressByJID
	}
	return caps.AddressByChatID
}

// recipientKey is one recipient's address: its kind and its normalised
// value (E.164, a JID, a chat id).
type recipientKey struct {
	kind  Kind
	value string
}

// keyOf is the key of a row (its values in column order): the first key
// column that is filled; false when none is.
func keyOf(keys []keyColumn, values []string) (recipientKey, bool) {
	for _, k := range keys {
		if k.index < len(values) && values[k.index] != "" {
			return recipientKey{k.kind, values[k.index]}, true
		}
	}
	return recipientKey{}, false
}

// address puts the key on msg: Phone, JID or ChatID.
func (k recipientKey) address(msg *sender.Message) {
	switch k.kind {
	case KindPhone:
		msg.Phone = k.value
	case KindJID:
		msg.JID = k.value
	default:
		msg.ChatID, _ = strconv.ParseInt(k.value, 10, 64)
	}
}

// phone is the recipient's phone when the key tells it: a phone, or a
// contact's JID; "" for a group or a chat id.
func (k recipientKey) phone() string {
	switch k.kind {
	case KindPhone:
		return k.value
	case KindJID:
		return jidPhone(k.value)
	}
	return ""
}

// location is where a send window is read for the recipient: its phone's
// zone when it has one, else the window's zone (a group, a chat).
func (k recipientKey) location(w *Window) *time.Location {
	return w.Location(k.phone())
}

// recipientPhone is the phone a message is addressed to: its Phone, or the
// number of a contact's JID; "" for a group or a chat id.
func recipientPhone(msg sender.Message) string {
	if msg.Phone != "" {
		return msg.Phone
	}
	return jidPhone(msg.JID)
}

// jidPhone is the phone of a contact's JID (14155550100@s.whatsapp.net is
// +14155550100); "" for any other JID.
func jidPhone(jid string) string {
	user, server, ok := strings.Cut(jid, "@")
	if !ok || server != jidContactServer || !allDigits(user) || len(user) < 7 || len(user) > maxE164Digits {
		return ""
	}
	return "+" + user
}

// The servers of the JIDs recipients have: a contact's, a group's.
const (
	jidContactServer = "s.whatsapp.net"
	jidGroupServer   = "g.us"
)

// NormalizeJID reads a WhatsApp JID as people write it (spaces around it,
// capitals, a contact's number with + or separators) and answers it as the
// providers take it: 14155550100@s.whatsapp.net for a contact, the group's
// id@g.us for a group.
func NormalizeJID(raw string) (string, error) {
	s := strings.ToLower(strings.TrimSpace(raw))
	user, server, ok := strings.Cut(s, "@")
	bad := fmt.Errorf("jid %q is not a WhatsApp ID like 14155550100@s.whatsapp.net, or a group's like 120363025551234567@g.us", clip(raw))
	if s == "" {
		return "", fmt.Errorf("jid is empty")
	}
	if !ok || strings.Contains(server, "@") {
		return "", bad
	}
	switch server {
	case jidContactServer:
		digits := strings.Map(func(r rune) rune {
			if strings.ContainsRune("+ -().", r) {
				return -1
			}
			return r
		}, user)
		if !allDigits(digits) || len(digits) < 7 || len(digits) > maxE164Digits {
			return "", bad
		}
		return digits + "@" + server, nil
	case jidGroupServer:
		// Groups are <digits>, or <creator's number>-<unix time> for old ones.
		if user == "" || strings.Trim(user, "0123456789-") != "" {
			return "", bad
		}
		return s, nil
	}
	return "", bad
}

// NormalizeChatID reads a TimelinesAI chat id: a positive whole number.
func NormalizeChatID(raw string) (string, error) {
	s := strings.TrimSpace(raw)
	if s == "" {
		return "", fmt.Errorf("chat_id is empty")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return "", fmt.Errorf("chat_id %q is not a chat id (a positive whole number)", clip(raw))
	}
	return strconv.FormatInt(n, 10), nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// dedupe drops a recipient whose key came before. Phones and contacts'
// JIDs share one set of numbers (a person's phone and JID are one
// recipient), packed as integers so that a million of them stay small;
// groups and chat ids, rarer, are kept as text.
type dedupe struct {
	numbers map[uint64]struct{}
	others  map[string]struct{}
}

func newDedupe() *dedupe {
	return &dedupe{numbers: map[uint64]struct{}{}, others: map[string]struct{}{}}
}

// seen records k and says whether it came before.
func (d *dedupe) seen(k recipientKey) bool {
	if phone := k.phone(); phone != "" {
		n := phoneKey(phone)
		_, dup := d.numbers[n]
		d.numbers[n] = struct{}{}
		return dup
	}
	s := string(k.kind) + ":" + k.value
	_, dup := d.others[s]
	d.others[s] = struct{}{}
	return dup
}

// Address is one recipient as an app names it (a sequence's enrolment): a
// phone, a JID or a chat id. As in a contacts file, the first of them that
// is given is its key.
type Address struct {
	Phone  string
	JID    string
	ChatID string
}

// ReadAddress reads a's key as an import reads a row's, for a provider
// with caps: its kind and normalised value. An *InputError names the field
// when none is given, the provider cannot address that kind, or the value
// is not valid.
func ReadAddress(a Address, caps sender.Capabilities, region string) (Kind, string, error) {
	for _, k := range []struct {
		kind Kind
		raw  string
	}{{KindPhone, a.Phone}, {KindJID, a.JID}, {KindChatID, a.ChatID}} {
		if strings.TrimSpace(k.raw) == "" {
			continue
		}
		if !addressable(caps, k.kind) {
			return "", "", FieldError(string(k.kind), fmt.Sprintf("%s cannot address recipients by %s; give a %s", caps.Name, k.kind, addressableKinds(caps)))
		}
		norm, err := normalizeKey(k.kind, k.raw, region)
		if err != nil {
			return "", "", FieldError(string(k.kind), err.Error())
		}
		return k.kind, norm, nil
	}
	return "", "", FieldError("phone", "give the recipient's "+addressableKinds(caps))
}

// normalizeKey normalises a key of kind.
func normalizeKey(kind Kind, raw, region string) (string, error) {
	switch kind {
	case KindPhone:
		return NormalizePhone(raw, region)
	case KindJID:
		return NormalizeJID(raw)
	}
	return NormalizeChatID(raw)
}

// KeyColumnsFor are the key columns of a campaign that takes recipients
// one at a time (a sequence step) for a provider with caps: one column per
// kind it can address, named as the kind.
func KeyColumnsFor(caps sender.Capabilities) []string {
	var cols []string
	for _, k := range keyKinds {
		if addressable(caps, k) {
			cols = append(cols, string(k))
		}
	}
	return cols
}

// SimulationFlags are the typing and presence simulation a campaign of a
// provider with caps sends with: what was asked, on by default; none for a
// provider without simulation.
func SimulationFlags(caps sender.Capabilities, typing, presence *bool) (*bool, *bool) {
	if !caps.TypingSimulation {
		return nil, nil
	}
	return orOn(typing), orOn(presence)
}
