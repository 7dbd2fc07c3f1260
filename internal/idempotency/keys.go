package idempotency

// The store's one Redis key a request: wac:idem:<scope>:<sha256(key)>,
// where scope is the SHA-256 of the caller's credential (see the package
// doc); a record (idemRecord) as JSON, with a TTL.

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// idempotencyRedisKey is wac:idem:<sha256(credential)>:<sha256(key)>.
func idempotencyRedisKey(authorization, idemKey string) string {
	cred := authorization
	if token, ok := BearerToken(authorization); ok {
		cred = token
	}
	scope := sha256.Sum256([]byte("wacampaign idempotency scope\x00" + cred))
	k := sha256.Sum256([]byte(idemKey))
	return "wac:idem:" + hex.EncodeToString(scope[:]) + ":" + hex.EncodeToString(k[:])
}

// BearerToken is the token of an Authorization value with the Bearer
// scheme, in any case ("bearer" too: RFC 7235 makes the scheme
// case-insensitive), trimmed; ok is false for another scheme. The API's
// auth and this store's scope read credentials alike through it.
func BearerToken(authorization string) (token string, ok bool) {
	scheme, rest, found := strings.Cut(strings.TrimSpace(authorization), " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimSpace(rest), true
}
