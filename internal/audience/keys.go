package audience

import "strconv"

// Redis layout. Every key carries the hash tag {aud}, so one script may
// read a suppression and reserve a frequency-cap slot together, and the
// suppression list and its order change together, also on Redis Cluster.
// One slot holds it all: its traffic is one small script per message sent
// (accounts send a message every few seconds each) and one HMGET per
// imported batch, far below what one Redis node serves.
//
//	wac:{aud}:suppressed        HASH  address → suppression entry (JSON, see Entry)
//	wac:{aud}:suppressed:order  ZSET  address (score 0), for paging the list in address order
//	wac:{aud}:cap:<address>     ZSET  "<campaign>/<seq>" → unix ms of a marketing send reserved to the address (expires after the cap's period)
//	wac:{aud}:last:<address>    STRING the last message sent to the address (JSON, see LastMessage; expires after REPLY_WINDOW)
const (
	keyPrefix     = "wac:{aud}:"
	suppressedKey = keyPrefix + "suppressed"
	orderKey      = keyPrefix + "suppressed:order"
)

func capKey(address string) string  { return keyPrefix + "cap:" + address }
func lastKey(address string) string { return keyPrefix + "last:" + address }

// capMember names one recipient of one campaign in a cap set, so that a
// retried send reserves the same slot again rather than a second one.
func capMember(campaign string, seq int64) string {
	return campaign + "/" + strconv.FormatInt(seq, 10)
}
