package sequence

import "github.com/redis/go-redis/v9"

// enrolScript claims an enrolment number for a phone, unless the phone is
// enrolled already. KEYS: sequence, enrolled. ARGV: phone, now (unix ms).
// Answers {n, enrolled at, claim}: an enrolClaim, where "pending" is an
// enrolment whose steps a crash may have left half written; it is finished
// like a new one (every write is idempotent).
var enrolScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[2], ARGV[1])
if cur then
  local e = cjson.decode(cur)
  if e.s == 'active' or e.s == 'pending' then return {tostring(e.n), tostring(e.t), e.s} end
end
local n = redis.call('HINCRBY', KEYS[1], 'next', 1) - 1
redis.call('HSET', KEYS[2], ARGV[1], cjson.encode({n = n, t = ARGV[2], s = 'pending'}))
redis.call('HINCRBY', KEYS[1], 'enrolled', 1)
return {tostring(n), ARGV[2], 'new'}
`)

// enrolClaim is enrolScript's verdict on a phone.
type enrolClaim string

const (
	enrolNew     enrolClaim = "new"     // enrolled now, under a new number
	enrolActive  enrolClaim = "active"  // enrolled already: nothing to do
	enrolPending enrolClaim = "pending" // an earlier enrolment a crash may have left half written
)
