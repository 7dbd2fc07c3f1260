//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
)

// bareTaskType is the fair baseline's task type: its handler makes the
// provider call a send makes, and nothing else.
const bareTaskType = "bench:bare-send"

// bareSend is the fair baseline's task payload: what a bare handler needs
// to make the product's HTTP POST (the product's own payload names a stored
// recipient instead, and renders the text from its row).
type bareSend struct {
	Phone string `json:"phone"`
	Text  string `json:"text"`
}

// runBareServer is figure 3's fair baseline process: a bare asynq server
// (same concurrency and queue as the product's worker) whose handler POSTs
// the task's message to the sandbox's POST /messages, as the product's
// TimelinesAI client does (JSON body, Bearer token, a client keeping as
// many idle connections), and fails the task on an answer that is not 2xx.
func runBareServer() error {
	addr, base := os.Getenv("BENCH_REDIS_ADDR"), os.Getenv("BENCH_SANDBOX_URL")
	concurrency, err := strconv.Atoi(os.Getenv("BENCH_CONCURRENCY"))
	if addr == "" || base == "" || err != nil {
		return errors.New("BENCH_REDIS_ADDR, BENCH_SANDBOX_URL and BENCH_CONCURRENCY are required")
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost, transport.MaxIdleConns = 64, 128
	client := &http.Client{Transport: transport, Timeout: 30 * time.Second}
	srv := asynq.NewServer(asynq.RedisClientOpt{Addr: addr}, asynq.Config{
		Concurrency: concurrency,
		Queues:      map[string]int{"send": 1},
		LogLevel:    asynq.WarnLevel,
	})
	mux := asynq.NewServeMux()
	mux.HandleFunc(bareTaskType, func(ctx context.Context, t *asynq.Task) error {
		return bareSendOnce(ctx, client, base, t.Payload())
	})
	return srv.Run(mux)
}

// bareSendOnce is the baseline's whole send: decode, POST, read the answer.
func bareSendOnce(ctx context.Context, client *http.Client, base string, payload []byte) error {
	var m bareSend
	if err := json.Unmarshal(payload, &m); err != nil {
		return fmt.Errorf("%w: %v", asynq.SkipRetry, err)
	}
	body, err := json.Marshal(m)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/messages", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+sandboxToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("sandbox answered %d: %.200s", resp.StatusCode, answer)
	}
	var receipt struct {
		Data struct {
			MessageUID string `json:"message_uid"`
		} `json:"data"`
	}
	return json.Unmarshal(answer, &receipt)
}
