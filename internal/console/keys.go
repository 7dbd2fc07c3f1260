package console

// The console's Redis keys, all of them. A session is one hash:
//
//	wac:console:session:<name>  hash  k: the API key, sealed (AES-GCM) with a
//	                                  key derived from the session id
//	                                  c: when it was created (unix seconds)
//	                            TTL   the session's idle lifetime, renewed on use
//
// <name> is derived from the session id (sessionName) and the id itself is
// only in the browser's cookie, so neither the key names nor a copy of
// Redis's data lead to a usable session or to an API key.
const sessionKeyPrefix = "wac:console:session:"

func sessionKey(name string) string { return sessionKeyPrefix + name }
