// Package quota keeps what every worker process must agree on before a
// message goes out, all of it in Redis so that any number of processes share
// it: the credit ledger synced from the provider's GET /quotas, the pacing of
// each WhatsApp account, its daily cap and warm-up ramp (daily.go) and its
// health (health.go), and the ceiling on API calls.
//
// Every decision is one atomic Redis operation (a Lua script, or redis_rate's
// GCRA script); no process keeps state that matters for correctness, so
// workers can be added, removed or killed at any moment. Two things are
// leased by a process and handed out locally, so that a fast campaign does
// not pay a script per message for them: credits, in blocks that Redis
// counts reserved until they close (creditblock.go), and API-call slots
// (calllimiter.go). A process that dies holding them leaves what a sync's
// leak rule, or the passing of time, takes back.
//
// Redis keys (all under "wac:"; keys that one script touches together share
// the {credits} hash tag, so the scripts also run on Redis Cluster):
//
//	wac:{credits}             HASH  the ledger: remaining (as last read), synced_at (ms), spent, reserved, exhausted_at (ms), seq
//	wac:{credits}:open        ZSET  open reservations (a process's credit blocks): id → reserved at (ms, Redis clock)
//	wac:{credits}:committed   ZSET  commits no quota read is known to reflect yet: id → committed at (ms)
//	wac:{credits}:cost        HASH  id → credits of each open or committed reservation
//	wac:quota                 HASH  the provider's last quota answer (messaging, non-recurring, API calls) and read_at (ms)
//	wac:quota:lock            STR   periodic quota read taken (SET NX PX interval)
//	wac:quota:now-lock        STR   on-demand quota read taken (SET NX PX gap)
//	wac:pace:<account>        STR   the account's next free send slot (ms, Redis clock; GCRA with a burst of one)
//	wac:plan:<account>        HASH  the account's booked timeline: tail (next free slot, ms), last (last booked slot, ms)
//	wac:intervals             HASH  account → send interval override (ms); account#slow → health's slowdown factor
//	wac:health:{<account>}    LIST  the account's recent outcomes, newest first (health.go)
//	wac:health:{<account>}:state STR ok, slowed or stopped: health's last verdict
//	wac:accounts              HASH  account → status (paused, disconnected) with reason and since
//	wac:accounts:known        SET   accounts campaigns use, for listings
//	wac:accounts:limits       HASH  account → daily cap and warm-up ramp (JSON)
//	wac:day:<account>:<day>   STR   messages the account sent or reserved that UTC day (kept 48h)
//	wac:apicalls              STR   the API-call ceiling's first slot no process leased (µs, Redis clock)
//
// The provider's default account (account "") is keyed "_default"; real
// account keys are phone numbers, which never take that form.
package quota
