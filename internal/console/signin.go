package console

import (
	"crypto/subtle"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"go.uber.org/zap"
)

// signinView is the sign-in form.
type signinView struct {
	Token string // echoes the sign-in cookie: the form's CSRF token
	Next  string
}

// signinPage shows the sign-in form, or sends a signed-in browser on.
func (c *Console) signinPage(w http.ResponseWriter, r *http.Request) {
	next := safeNext(r.URL.Query().Get("next"))
	if s, err := c.currentSession(r); err == nil && s != nil {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	c.renderSignin(w, r, http.StatusOK, next, nil)
}

func (c *Console) renderSignin(w http.ResponseWriter, r *http.Request, status int, next string, apiErr *APIError) {
	token, err := randomToken()
	if err != nil {
		c.apiFailure(w, r, nil, err)
		return
	}
	setCookie(w, r, signinCookie, token, 0)
	c.render(w, status, "signin", page{Title: "Sign in", Error: apiErr, Data: signinView{Token: token, Next: next}})
}

// signin trades a valid API key for a session. The key is checked by the
// API itself (a read it answers only for its keys).
func (c *Console) signin(w http.ResponseWriter, r *http.Request) {
	ck, err := r.Cookie(signinCookie)
	if err != nil || subtle.ConstantTimeCompare([]byte(ck.Value), []byte(r.PostFormValue("csrf"))) != 1 {
		c.problem(w, r, nil, http.StatusForbidden, "This sign-in form is not from this console, or it is stale. Open the sign-in page again.")
		return
	}
	next := safeNext(r.PostFormValue("next"))
	key := strings.TrimSpace(r.PostFormValue("api_key"))
	if key == "" {
		c.renderSignin(w, r, http.StatusBadRequest, next, fieldError(http.StatusBadRequest, "api_key", "Enter an API key."))
		return
	}
	err = c.call(r.Context(), apiRequest{method: http.MethodGet, path: "/v1/campaigns?limit=1", key: key}, nil)
	var apiErr *APIError
	if errors.As(err, &apiErr) && apiErr.Status == http.StatusUnauthorized {
		c.renderSignin(w, r, http.StatusUnauthorized, next, fieldError(http.StatusUnauthorized, "api_key",
			"That API key is not valid. Use one of the keys in this deployment's API_KEYS."))
		return
	}
	if err != nil {
		c.apiFailure(w, r, nil, err)
		return
	}
	s, err := c.sessions.create(r.Context(), key)
	if err != nil {
		c.log.Error("create a console session", zap.Error(err))
		c.problem(w, r, nil, http.StatusServiceUnavailable, "The console cannot reach its session store (Redis). Try again in a moment.")
		return
	}
	setCookie(w, r, sessionCookie, s.cookieValue(), 0)
	setCookie(w, r, signinCookie, "", -1)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// signout ends the session: deleted in Redis, so its cookie opens nothing
// any more, wherever a copy of it is.
func (c *Console) signout(w http.ResponseWriter, r *http.Request, s *session) {
	if err := c.sessions.delete(r.Context(), s); err != nil {
		c.log.Error("sign out", zap.Error(err))
		c.problem(w, r, s, http.StatusServiceUnavailable, "Signing out failed: the session store (Redis) does not answer. Try again in a moment.")
		return
	}
	setCookie(w, r, sessionCookie, "", -1)
	http.Redirect(w, r, "/signin", http.StatusSeeOther)
}

// safeNext is where to go after signing in: a path of this console, never
// another site ("//evil.example", "https://…").
func safeNext(next string) string {
	u, err := url.Parse(next)
	if err != nil || next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") ||
		strings.HasPrefix(next, "/\\") || u.Scheme != "" || u.Host != "" || strings.HasPrefix(next, "/signin") {
		return "/campaigns"
	}
	return next
}

// fieldError is a refusal of the console's own, shaped like the API's.
func fieldError(status int, field, msg string) *APIError {
	return &APIError{Status: status, Message: msg, ErrorCode: "validation_error", Errors: []apiProblem{{Fields: []string{field}, Msg: msg}}}
}
