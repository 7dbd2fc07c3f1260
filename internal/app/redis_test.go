package app

import (
	"context"
	"os/exec"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

func TestClientForURLFollowsTheTopology(t *testing.T) {
	for _, tc := range []struct {
		url  string
		want string // the go-redis client type
	}{
		{"redis://redis:6379/2", "*redis.Client"},
		{"rediss://:pw@redis:6380", "*redis.Client"},
		{"redis://s1:26379?master_name=mymaster&addr=s2:26379&addr=s3:26379", "*redis.Client"}, // a failover client is a *redis.Client
		{"redis-sentinel://s1:26379,s2:26379?master=mymaster", "*redis.Client"},
		{"redis://n1:7000?addr=n2:7001&addr=n3:7002", "*redis.ClusterClient"},
	} {
		client, err := clientForURL(tc.url, 10)
		if err != nil {
			t.Errorf("%s: %v", tc.url, err)
			continue
		}
		got := typeName(client)
		if got != tc.want {
			t.Errorf("%s: a %s, want a %s", tc.url, got, tc.want)
		}
		_ = client.Close()
	}
}

// TestSentinelURLAsksTheSentinels tells a failover client from a plain one
// by what it does: it asks the sentinels for the master, so its error
// speaks of sentinels when none answers.
func TestSentinelURLAsksTheSentinels(t *testing.T) {
	client, err := clientForURL("redis://127.0.0.1:1?master_name=themaster&dial_timeout=200ms&max_retries=-1", 10)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	err = client.Ping(context.Background()).Err()
	if err == nil || !strings.Contains(err.Error(), "sentinel") {
		t.Fatalf("ping through an unreachable sentinel: %v; want an error about the sentinels", err)
	}
}

func TestBadRedisURLsAreRefusedWithoutThePassword(t *testing.T) {
	for _, raw := range []string{
		"redis://:hunter2@n1:7000?addr=n2:7001&bogus=1",
		"redis://:hunter2@s1:26379?master_name=m&bogus=1",
		"http://:hunter2@host:6379",
		"redis://:hunter2@host:6379/notadb",
		":hunter2@%zz",
	} {
		_, err := OpenRedis(context.Background(), Config{RedisURL: raw, RedisPipeline: "off"}, ForAPI, zap.NewNop())
		if err == nil {
			t.Errorf("%s: accepted", raw)
			continue
		}
		if !strings.HasPrefix(err.Error(), "REDIS_URL: ") || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: error %q; want one naming REDIS_URL without the password", raw, err)
		}
	}
}

func TestRedactURLHidesPasswords(t *testing.T) {
	for _, raw := range []string{
		"redis://user:hunter2@host:6379/0",
		"redis://s1:26379?master_name=m&password=hunter2",
	} {
		if got := redactURL(raw); strings.Contains(got, "hunter2") {
			t.Errorf("redactURL(%q) = %q", raw, got)
		}
	}
}

// TestNoRedisURLNeverMeansTheLocalRedis: without REDIS_URL a process gets
// the embedded Redis, never whatever listens on 127.0.0.1:6379.
func TestNoRedisURLNeverMeansTheLocalRedis(t *testing.T) {
	r, err := OpenRedis(context.Background(), Config{RedisPipeline: "off"}, ForWorker, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if !r.Embedded || strings.Contains(r.URL, ":6379") {
		t.Fatalf("without REDIS_URL: %s (embedded %v); want the embedded Redis", r.URL, r.Embedded)
	}
}

func TestDevRedisKeepsDataAcrossRestartsAndLocksItsFolder(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatal("redis-server is not installed (make test installs it)")
	}
	ctx := context.Background()
	dir := t.TempDir()
	cfg := Config{RedisPipeline: "off"}
	first, err := OpenDevRedis(ctx, cfg, ForAPI, dir, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	if first.Embedded {
		t.Fatalf("dev Redis is %s (embedded %v)", first.URL, first.Embedded)
	}
	if err := first.Client.Set(ctx, "campaign", "kept", 0).Err(); err != nil {
		t.Fatal(err)
	}

	_, err = OpenDevRedis(ctx, cfg, ForAPI, dir, zap.NewNop())
	if err == nil || !strings.Contains(err.Error(), "in use") || !strings.Contains(err.Error(), "make run ADDR=") {
		t.Fatalf("a second dev Redis on the same folder: %v; want a refusal saying how to run another", err)
	}

	addr := first.Client.(*redis.Client).Options().Addr
	first.Close()
	probe := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer probe.Close()
	if probe.Ping(ctx).Err() == nil {
		t.Fatal("the dev redis-server still answers after Close")
	}

	again, err := OpenDevRedis(ctx, cfg, ForAPI, dir, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if v, err := again.Client.Get(ctx, "campaign").Result(); err != nil || v != "kept" {
		t.Fatalf("after a restart the key is %q (%v); want kept", v, err)
	}
}

func typeName(v any) string {
	switch v.(type) {
	case *redis.Client:
		return "*redis.Client"
	case *redis.ClusterClient:
		return "*redis.ClusterClient"
	}
	return "something else"
}
