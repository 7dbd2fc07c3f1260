package console

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cookie names. The session cookie holds only a random id; the sign-in
// cookie carries the token the sign-in form must echo (a session does not
// exist yet to tie it to).
const (
	sessionCookie = "wac_session"
	signinCookie  = "wac_signin"
)

// DefaultSessionTTL is how long a session lives without being used.
const DefaultSessionTTL = 12 * time.Hour

// session is a signed-in browser: its id (only in its cookie), the API key
// it signed in with (only here and, sealed, in Redis), and its CSRF token.
type session struct {
	id     []byte
	apiKey string
}

// cookieValue is the id as the cookie carries it.
func (s *session) cookieValue() string { return base64.RawURLEncoding.EncodeToString(s.id) }

// csrfToken is the token every form of this session carries. It is derived
// from the id, so it needs no storage, and it says nothing about the id.
func (s *session) csrfToken() string {
	return base64.RawURLEncoding.EncodeToString(derive(s.id, "csrf"))
}

// validCSRF reports whether token is this session's CSRF token.
func (s *session) validCSRF(token string) bool {
	return subtle.ConstantTimeCompare([]byte(token), []byte(s.csrfToken())) == 1
}

// derive is HMAC-SHA256(id, purpose): one key per purpose from the id.
func derive(id []byte, purpose string) []byte {
	m := hmac.New(sha256.New, id)
	m.Write([]byte(purpose))
	return m.Sum(nil)
}

// sessionName is the session's name in Redis.
func sessionName(id []byte) string { return hex.EncodeToString(derive(id, "redis key")) }

// sessionStore keeps sessions in Redis with an idle TTL.
type sessionStore struct {
	rdb redis.UniversalClient
	ttl time.Duration
}

// create starts a session for apiKey.
func (st *sessionStore) create(ctx context.Context, apiKey string) (*session, error) {
	s := &session{id: make([]byte, 32), apiKey: apiKey}
	if _, err := rand.Read(s.id); err != nil {
		return nil, fmt.Errorf("console: session id: %w", err)
	}
	sealed, err := seal(s.id, apiKey)
	if err != nil {
		return nil, err
	}
	key := sessionKey(sessionName(s.id))
	_, err = st.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, key, "k", sealed, "c", strconv.FormatInt(time.Now().Unix(), 10))
		p.Expire(ctx, key, st.ttl)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("console: store the session: %w", err)
	}
	return s, nil
}

// load finds the session of a cookie value and renews its TTL; nil, nil
// when there is none (never was, expired, signed out, or not an id at all).
func (st *sessionStore) load(ctx context.Context, cookie string) (*session, error) {
	id, err := base64.RawURLEncoding.DecodeString(cookie)
	if err != nil || len(id) != 32 {
		return nil, nil
	}
	key := sessionKey(sessionName(id))
	var sealed *redis.StringCmd
	_, err = st.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		sealed = p.HGet(ctx, key, "k")
		p.Expire(ctx, key, st.ttl)
		return nil
	})
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("console: read the session: %w", err)
	}
	apiKey, err := open(id, sealed.Val())
	if err != nil {
		return nil, nil // written with another id: not this browser's
	}
	return &session{id: id, apiKey: apiKey}, nil
}

// delete ends a session.
func (st *sessionStore) delete(ctx context.Context, s *session) error {
	if err := st.rdb.Del(ctx, sessionKey(sessionName(s.id))).Err(); err != nil {
		return fmt.Errorf("console: delete the session: %w", err)
	}
	return nil
}

// seal encrypts the API key with a key derived from the session id, so that
// what Redis holds is of no use without the browser's cookie.
func seal(id []byte, apiKey string) (string, error) {
	aead, err := sessionCipher(id)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("console: nonce: %w", err)
	}
	return base64.RawStdEncoding.EncodeToString(aead.Seal(nonce, nonce, []byte(apiKey), nil)), nil
}

func open(id []byte, sealed string) (string, error) {
	aead, err := sessionCipher(id)
	if err != nil {
		return "", err
	}
	b, err := base64.RawStdEncoding.DecodeString(sealed)
	if err != nil || len(b) < aead.NonceSize() {
		return "", errors.New("console: not a sealed key")
	}
	plain, err := aead.Open(nil, b[:aead.NonceSize()], b[aead.NonceSize():], nil)
	if err != nil {
		return "", fmt.Errorf("console: open the sealed key: %w", err)
	}
	return string(plain), nil
}

func sessionCipher(id []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(derive(id, "seal"))
	if err != nil {
		return nil, fmt.Errorf("console: session cipher: %w", err)
	}
	return cipher.NewGCM(block)
}

// secureRequest reports whether the browser reached us over TLS, directly
// or through a proxy that says so: cookies are then marked Secure.
func secureRequest(r *http.Request) bool {
	return r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https"
}

// setCookie writes a console cookie: HttpOnly, SameSite=Strict, for the
// whole console. maxAge < 0 deletes it; 0 makes it last the browser session.
func setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     "/",
		MaxAge:   maxAge,
		HttpOnly: true,
		Secure:   secureRequest(r),
		SameSite: http.SameSiteStrictMode,
	})
}

// randomToken is 32 random bytes, URL-safe.
func randomToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("console: random token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
