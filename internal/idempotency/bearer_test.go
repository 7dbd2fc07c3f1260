package idempotency

import "testing"

func TestBearerTokenSchemeIsCaseInsensitive(t *testing.T) {
	for header, want := range map[string]string{
		"Bearer k1":   "k1",
		"bearer k1":   "k1",
		"BEARER  k1 ": "k1",
		"Basic k1":    "",
		"Bearerk1":    "",
		"":            "",
		"bearer":      "",
	} {
		got, ok := BearerToken(header)
		if got != want || ok != (want != "") {
			t.Errorf("BearerToken(%q) = %q, %v; want %q", header, got, ok, want)
		}
	}
	// The same key in either case is one caller: one idempotency scope.
	if idempotencyRedisKey("Bearer k1", "x") != idempotencyRedisKey("bearer k1", "x") {
		t.Error("bearer and Bearer with the same key got different idempotency scopes")
	}
}
