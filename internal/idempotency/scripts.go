package idempotency

import "github.com/redis/go-redis/v9"

// The scripts of the Idempotency-Key store. KEYS[1] is always the key of
// keys.go.

// idemStoreScript replaces the claim by the response if the key still holds
// this request's claim, or nothing (the claim expired during a long request
// and nobody else took the key). ARGV: claim, response, ttl in ms.
var idemStoreScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] or cur == false then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0`)

// idemReleaseScript deletes the key if it still holds this request's claim.
var idemReleaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`)
