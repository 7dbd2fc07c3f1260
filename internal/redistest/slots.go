package redistest

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// Redis Cluster runs a script only when every key it names lives in one hash
// slot; a single server runs it regardless. So that a script whose keys
// could be split by a cluster fails every test that runs it, not only the
// cluster test, the clients of this package check the keys of each script
// call (EVAL, EVALSHA and their read-only forms) before it is sent.

// slotGuard is a go-redis hook that fails the test on a script call whose
// keys hash to more than one cluster slot.
type slotGuard struct{ tb testing.TB }

// GuardSlots adds the slot check to a client the test did not get from
// this package (one the product opened from its configuration, say).
func GuardSlots(tb testing.TB, c redis.UniversalClient) {
	c.AddHook(slotGuard{tb})
}

func (slotGuard) DialHook(next redis.DialHook) redis.DialHook { return next }

func (g slotGuard) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		g.check(cmd)
		return next(ctx, cmd)
	}
}

func (g slotGuard) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, cmd := range cmds {
			g.check(cmd)
		}
		return next(ctx, cmds)
	}
}

func (g slotGuard) check(cmd redis.Cmder) {
	if err := CheckScriptSlots(cmd.Args()); err != nil {
		g.tb.Errorf("redistest: %v", err)
	}
}

// CheckScriptSlots answers an error when args are a script call (EVAL,
// EVALSHA, EVAL_RO, EVALSHA_RO) whose keys do not share one cluster slot.
// Any other command answers nil.
func CheckScriptSlots(args []any) error {
	if len(args) < 3 {
		return nil
	}
	switch strings.ToLower(fmt.Sprint(args[0])) {
	case "eval", "evalsha", "eval_ro", "evalsha_ro":
	default:
		return nil
	}
	n, err := strconv.Atoi(fmt.Sprint(args[2]))
	if err != nil || n < 0 || 3+n > len(args) {
		return fmt.Errorf("script call with a bad key count: %v", args[:3])
	}
	keys := args[3 : 3+n]
	for _, k := range keys[min(1, len(keys)):] {
		if Slot(fmt.Sprint(k)) != Slot(fmt.Sprint(keys[0])) {
			return fmt.Errorf("script keys in different cluster slots (CROSSSLOT on a cluster): %q is in slot %d, %q in slot %d",
				keys[0], Slot(fmt.Sprint(keys[0])), k, Slot(fmt.Sprint(k)))
		}
	}
	return nil
}

// Slot is the Redis Cluster hash slot of a key: CRC16 (XMODEM) of the key,
// or of its hash tag (the part between the first "{" and the next "}",
// when not empty), modulo 16384.
func Slot(key string) int {
	if open := strings.IndexByte(key, '{'); open >= 0 {
		if end := strings.IndexByte(key[open+1:], '}'); end > 0 {
			key = key[open+1 : open+1+end]
		}
	}
	return int(crc16(key) % 16384)
}

// crc16 is CRC-16/XMODEM (polynomial 0x1021, initial 0), the checksum
// Redis Cluster hashes keys with.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for bit := 0; bit < 8; bit++ {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}
