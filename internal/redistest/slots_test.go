package redistest

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// The slots Redis itself gives (CLUSTER KEYSLOT), for keys with and without
// hash tags.
func TestSlotMatchesRedisCluster(t *testing.T) {
	for key, want := range map[string]int{
		"123456789":     12739, // the CRC16 check value of the cluster spec
		"foo":           12182,
		"{user1000}.a":  Slot("user1000"),
		"a{}b":          Slot("a{}b"),
		"{camp:1}:rows": Slot("camp:1"),
	} {
		if got := Slot(key); got != want {
			t.Errorf("Slot(%q) = %d, want %d", key, got, want)
		}
	}
	if Slot("a{}b") == Slot("") {
		t.Errorf("an empty hash tag must hash the whole key")
	}
}

func TestScriptKeysMustShareASlot(t *testing.T) {
	if err := CheckScriptSlots([]any{"evalsha", "abc", "2", "{c:1}:x", "{c:1}:y", "argv"}); err != nil {
		t.Errorf("same hash tag refused: %v", err)
	}
	err := CheckScriptSlots([]any{"evalsha", "abc", "2", "{c:1}:x", "{c:2}:y"})
	if err == nil || !strings.Contains(err.Error(), "CROSSSLOT") {
		t.Errorf("keys of two campaigns: got %v, want a CROSSSLOT error", err)
	}
	if err := CheckScriptSlots([]any{"mget", "a", "b", "c"}); err != nil {
		t.Errorf("a command that is not a script: %v", err)
	}
}

// A real server's clients from this package fail the test on a script that
// a cluster would refuse, though the server itself runs it.
func TestClientsFailTestsOnCrossSlotScripts(t *testing.T) {
	srv := Start(t)
	inner := &recordingTB{TB: t}
	c := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer c.Close()
	GuardSlots(inner, c)
	script := redis.NewScript(`return #KEYS`)
	if err := script.Run(context.Background(), c, []string{"{a}:1", "{a}:2"}).Err(); err != nil {
		t.Fatal(err)
	}
	if inner.failed != "" {
		t.Fatalf("keys of one slot were refused: %s", inner.failed)
	}
	if err := script.Run(context.Background(), c, []string{"{a}:1", "{b}:2"}).Err(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(inner.failed, "CROSSSLOT") {
		t.Fatalf("a cross-slot script passed unnoticed (failure recorded: %q)", inner.failed)
	}
}

// recordingTB keeps a failure instead of failing the real test.
type recordingTB struct {
	testing.TB
	failed string
}

func (r *recordingTB) Errorf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
}
