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
	if token, ok := strings.CutPrefix(authorization, "Bearer "); ok {
		cred = strings.TrimSpace(token)
	}
	scope := sha256.Sum256([]byte("wacampaign idempotency scope\x00" + cred))
	k := sha256.Sum256([]byte(idemKey))
	return "wac:idem:" + hex.EncodeToString(scope[:]) + ":" + hex.EncodeToString(k[:])
}
