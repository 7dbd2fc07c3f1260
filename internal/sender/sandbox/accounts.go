package sandbox

import (
	"regexp"
	"strings"
	"time"

	"github.com/nyaruka/phonenumbers"
)

// account is a WhatsApp account of the workspace.
type account struct {
	phone       string // E.164
	connected   bool
	seq         int64 // higher: connected more recently
	connectedOn time.Time
}

// ConnectAccount connects phone to the workspace (adding it when it is not
// there yet) and makes it the most recently connected account: the default
// sender of requests that name none. A gateway instance sends again.
func (s *Server) ConnectAccount(phone string) {
	normalized, ok := s.normalizePhone(phone)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	acc := s.connectLocked(normalized, s.now())
	s.accountChangedLocked(acc)
}

// DisconnectAccount disconnects phone: sends through it are refused with a
// validation error until ConnectAccount (a gateway instance whose number it
// is answers 500 "Failed to send message").
func (s *Server) DisconnectAccount(phone string) {
	normalized, ok := s.normalizePhone(phone)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	acc := s.findAccountLocked(normalized)
	if acc == nil {
		acc = &account{phone: normalized}
		s.accounts = append(s.accounts, acc)
	}
	acc.connected = false
	s.accountChangedLocked(acc)
}

// accountChangedLocked tells the webhook and the state file.
func (s *Server) accountChangedLocked(acc *account) {
	if s.cfg.Mode != ModeGateway {
		s.emitLocked(accountEvent(acc, s.now()))
	}
	s.changedLocked()
}

func (s *Server) connectLocked(phone string, now time.Time) *account {
	acc := s.findAccountLocked(phone)
	if acc == nil {
		acc = &account{phone: phone}
		s.accounts = append(s.accounts, acc)
	}
	s.accountSeq++
	acc.seq = s.accountSeq
	acc.connected = true
	acc.connectedOn = now
	return acc
}

func (s *Server) findAccountLocked(phone string) *account {
	for _, acc := range s.accounts {
		if acc.phone == phone {
			return acc
		}
	}
	return nil
}

// resolveSenderLocked picks the account that sends a message to the phone
// or JID endpoints: the named one, or the most recently connected one. It
// explains a refusal in the provider's field-error shape.
func (s *Server) resolveSenderLocked(named string) (string, *fieldError) {
	if named == "" {
		var best *account
		for _, acc := range s.accounts {
			if acc.connected && (best == nil || acc.seq > best.seq) {
				best = acc
			}
		}
		switch {
		case best != nil:
			return best.phone, nil
		case s.restrictAccounts || len(s.accounts) > 0:
			return "", &fieldError{Fields: []string{"whatsapp_account_phone"}, Msg: "no WhatsApp account is connected to this workspace"}
		default:
			return "", nil // any account goes, and none was named
		}
	}
	phone, ok := s.normalizePhone(named)
	if !ok {
		return "", &fieldError{Fields: []string{"whatsapp_account_phone"}, Msg: "must be a phone number in international format"}
	}
	acc := s.findAccountLocked(phone)
	switch {
	case acc == nil && s.restrictAccounts:
		return "", &fieldError{Fields: []string{"whatsapp_account_phone"}, Msg: "WhatsApp account " + phone + " is not connected to this workspace"}
	case acc != nil && !acc.connected:
		return "", &fieldError{Fields: []string{"whatsapp_account_phone"}, Msg: "WhatsApp account " + phone + " is disconnected"}
	}
	return phone, nil
}

// learnAccountLocked adds an account first seen in a request (when
// Config.Accounts is empty and any account goes).
func (s *Server) learnAccountLocked(phone string, now time.Time) {
	if phone == "" || s.findAccountLocked(phone) != nil {
		return
	}
	s.accounts = append(s.accounts, &account{phone: phone, connected: true, connectedOn: now})
	s.changedLocked()
}

// phoneSeparators are what people write inside phone numbers.
var phoneSeparators = strings.NewReplacer(" ", "", "-", "", ".", "", "(", "", ")", "")

var phoneDigits = regexp.MustCompile(`^\+?[0-9]{7,15}$`)

// DefaultRegion is the region of numbers written without + when
// Config.DefaultRegion is empty.
const DefaultRegion = "US"

// normalizePhone reads a phone as the provider does (see normalizePhoneIn)
// in the sandbox's default region.
func (s *Server) normalizePhone(raw string) (string, bool) {
	return normalizePhoneIn(raw, s.cfg.DefaultRegion)
}

// normalizePhoneIn accepts [+] and 7 to 15 digits, after removing spaces,
// dashes, dots and parentheses, and returns the number as +digits. A number
// written without + is a national number of region when it is a valid one
// there (the provider's guide accepts "(415) 555-1234", a US number, not a
// Swiss one), else the digits with their country code ("14155550100").
func normalizePhoneIn(raw, region string) (string, bool) {
	s := phoneSeparators.Replace(strings.TrimSpace(raw))
	if !phoneDigits.MatchString(s) {
		return "", false
	}
	if strings.HasPrefix(s, "+") {
		return s, true
	}
	if num, err := phonenumbers.Parse(s, region); err == nil && phonenumbers.IsValidNumberForRegion(num, region) {
		return phonenumbers.Format(num, phonenumbers.E164), true
	}
	return "+" + s, true
}

var (
	contactJID = regexp.MustCompile(`^([0-9]{7,15})@s\.whatsapp\.net$`)
	groupJID   = regexp.MustCompile(`^[0-9]+(-[0-9]+)*@g\.us$`)
)

// parseJID returns the recipient a JID addresses: +digits for a contact,
// the JID itself for a group.
func parseJID(jid string) (string, bool) {
	jid = strings.TrimSpace(jid)
	if m := contactJID.FindStringSubmatch(jid); m != nil {
		return "+" + m[1], true
	}
	if groupJID.MatchString(jid) {
		return jid, true
	}
	return "", false
}

// normalizeRecipient reads a phone or a JID, for matching faults.
func (s *Server) normalizeRecipient(raw string) string {
	if p, ok := s.normalizePhone(raw); ok {
		return p
	}
	if r, ok := parseJID(raw); ok {
		return r
	}
	return raw
}

func jidOf(recipient string) string {
	if strings.HasPrefix(recipient, "+") {
		return recipient[1:] + "@s.whatsapp.net"
	}
	return recipient
}
