package sender

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
)

// GatewayRoutes say which gateway instance sends for which WhatsApp account:
// a self-hosted gateway usually serves one number.
type GatewayRoutes struct {
	// Accounts maps sender account phones (E.164, "+14155550100") to the
	// base URL of the instance that serves them.
	Accounts map[string]string
	// Default is the base URL of the instance for a message without an
	// account, or with one Accounts does not name; "" refuses those.
	Default string
}

// GatewayRouter is the Provider over several gateway instances: each message
// goes through the instance of its AccountPhone. Every instance takes the
// same API key. It is safe for concurrent use.
type GatewayRouter struct {
	byAccount map[string]*Gateway // by the account's digits
	fallback  *Gateway            // nil: none
}

var _ Provider = (*GatewayRouter)(nil)

// NewGatewayRouter returns a router over the instances of routes, all
// authenticating with apiKey (see NewGateway) and sharing one HTTP client
// and opts. It refuses routes without any instance, an account that is not
// a phone number, and a base URL that is not an http(s) URL.
func NewGatewayRouter(routes GatewayRoutes, apiKey string, opts ...Option) (*GatewayRouter, error) {
	if len(routes.Accounts) == 0 && routes.Default == "" {
		return nil, errors.New("no gateway instance: give a default base URL or accounts mapped to base URLs")
	}
	settings := newSettings("", opts)
	byURL := map[string]*Gateway{} // instances named twice share a client
	instance := func(baseURL string) (*Gateway, error) {
		if err := CheckBaseURL(baseURL); err != nil {
			return nil, err
		}
		baseURL = trimTrailingSlashes(baseURL)
		if g, ok := byURL[baseURL]; ok {
			return g, nil
		}
		s := settings
		s.baseURL = baseURL
		byURL[baseURL] = newGateway(s, apiKey)
		return byURL[baseURL], nil
	}

	r := &GatewayRouter{byAccount: map[string]*Gateway{}}
	for _, phone := range slices.Sorted(maps.Keys(routes.Accounts)) {
		digits, ok := e164Digits(phone)
		if !ok || !strings.HasPrefix(strings.TrimSpace(phone), "+") {
			return nil, fmt.Errorf("account %q is not a phone number in international format (+<country code><number>)", phone)
		}
		g, err := instance(routes.Accounts[phone])
		if err != nil {
			return nil, fmt.Errorf("account %s: %w", phone, err)
		}
		r.byAccount[digits] = g
	}
	if routes.Default != "" {
		g, err := instance(routes.Default)
		if err != nil {
			return nil, fmt.Errorf("default instance: %w", err)
		}
		r.fallback = g
	}
	return r, nil
}

// CheckBaseURL says what is wrong with a provider's base URL: it must be an
// absolute http or https URL with a host. Any credentials in it are left
// out of the message.
func CheckBaseURL(raw string) error {
	u, err := url.Parse(strings.TrimSpace(raw))
	switch {
	case err != nil:
		return fmt.Errorf("not a URL: %v", errors.Unwrap(err))
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%s: give an http:// or https:// URL", u.Redacted())
	case u.Host == "":
		return fmt.Errorf("%s: the URL has no host", u.Redacted())
	}
	return nil
}

// Capabilities are GatewayCapabilities.
func (r *GatewayRouter) Capabilities() Capabilities { return GatewayCapabilities() }

// Quota answers ErrNotSupported: gateways meter nothing.
func (r *GatewayRouter) Quota(context.Context) (Quota, error) { return Quota{}, ErrNotSupported }

// StatusHistory answers ErrNotSupported: gateways keep no history.
func (r *GatewayRouter) StatusHistory(context.Context, string) ([]StatusEvent, error) {
	return nil, ErrNotSupported
}

// Send sends msg through the instance of msg.AccountPhone, or the default
// instance when it has none or one no instance serves. Without a default,
// such a message is refused (Invalid, naming whatsapp_account_phone, which
// callers read as "this account cannot send").
func (r *GatewayRouter) Send(ctx context.Context, msg Message) (Receipt, error) {
	if perr := refuseInvalid(msg, GatewayCapabilities()); perr != nil {
		return Receipt{}, perr
	}
	g, perr := r.instanceFor(msg.AccountPhone)
	if perr != nil {
		return Receipt{}, perr
	}
	return g.Send(ctx, msg)
}

// instanceFor picks the instance that sends for account.
func (r *GatewayRouter) instanceFor(account string) (*Gateway, *Error) {
	if digits, ok := e164Digits(account); ok && account != "" {
		if g, ok := r.byAccount[digits]; ok {
			return g, nil
		}
	}
	if r.fallback != nil {
		return r.fallback, nil
	}
	msg := "the message names no sender account, and there is no default gateway instance"
	if account != "" {
		msg = "no gateway instance serves WhatsApp account " + account
	}
	return nil, &Error{Kind: Invalid, Op: OpSend, Code: "validation_error", Message: "message refused before sending",
		Fields: []FieldError{{Fields: []string{"whatsapp_account_phone"}, Msg: msg}}}
}
