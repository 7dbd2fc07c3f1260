package main

import (
	"bytes"
	"context"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/wacampaign/wacampaign/internal/app"
	"github.com/wacampaign/wacampaign/internal/campaign"
	"github.com/wacampaign/wacampaign/internal/redistest"
)

// The API's request parsing, fuzzed against a real redis-server started
// once per fuzzing process. The seeds run under plain go test; fuzz with
//
//	go test -run=^$ -fuzz=^FuzzCreateCampaignForm$ -fuzztime=10s ./cmd/campaign-api
//	go test -run=^$ -fuzz=^FuzzWebhookBody$ -fuzztime=10s ./cmd/campaign-api

const (
	fuzzKey      = "fuzz-key"
	fuzzSecret   = "fuzz-secret"
	fuzzBoundary = "fuzzboundary"
)

// fuzzAPI is the API handler on a throwaway Redis, and that Redis.
func fuzzAPI(f *testing.F) (http.Handler, *redis.Client) {
	f.Helper()
	rdb := redistest.Start(f).Client(f)
	cfg, err := app.Load(func(string) string { return "" })
	if err != nil {
		f.Fatal(err)
	}
	cfg.APIKeys = []string{fuzzKey}
	cfg.MaxUploadBytes = 1 << 20
	cfg.TemplatesDir = filepath.Join("..", "..", "templates")
	cfg.WebhookSecret = fuzzSecret
	cfg.APIRateLimit = app.RateLimit{} // a 429 would keep inputs from the handler
	srv := newServer(cfg, rdb, zap.NewNop())
	f.Cleanup(srv.Close)
	return srv.routes(), rdb
}

// fuzzForm is a multipart body of parts in the order given, with the fuzz
// boundary; a part named contacts is a file.
func fuzzForm(parts ...[2]string) []byte {
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	_ = w.SetBoundary(fuzzBoundary)
	for _, p := range parts {
		if p[0] == "contacts" {
			fw, _ := w.CreateFormFile("contacts", "contacts.csv")
			fw.Write([]byte(p[1]))
			continue
		}
		_ = w.WriteField(p[0], p[1])
	}
	w.Close()
	return body.Bytes()
}

func FuzzCreateCampaignForm(f *testing.F) {
	handler, rdb := fuzzAPI(f)
	store := campaign.NewStore(rdb)
	contacts := [2]string{"contacts", "phone,name\n+12025550101,Ann\n(202) 555-0102,Bob\n123,Bad\n"}
	tmpl := [2]string{"template", "Hi {{.name}}"}
	later := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	valid := fuzzForm([2]string{"name", "Fuzz"}, tmpl, contacts)
	for _, seed := range [][]byte{
		valid,
		valid[:len(valid)/2],
		valid[:len(valid)-10],
		fuzzForm(contacts, tmpl, [2]string{"accounts", "+14155550100"}),
		fuzzForm(tmpl, contacts, [2]string{"accounts", "+14155550100,+14155550101"}, [2]string{"send_at", later}, [2]string{"label", "x"}),
		fuzzForm(tmpl, contacts, [2]string{"send_at", "tomorrow"}),
		fuzzForm(tmpl, contacts, [2]string{"nonsense", "x"}),
		fuzzForm(tmpl, contacts, contacts),
		fuzzForm([2]string{"template_name", "welcome"}, [2]string{"contacts", "phone,name\n+12025550101,Ann\n"}, [2]string{"window_hours", "09:00-18:00"}),
		fuzzForm(tmpl, [2]string{"contacts", "PK\x03\x04"}),
		fuzzForm(tmpl),
		[]byte("--" + fuzzBoundary + "\r\nContent-Disposition: form-data; name=\"contacts\"\r\n\r\nphone\n+12025550101\n"),
		[]byte("not multipart at all"),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ctx := context.Background()
		if err := rdb.FlushDB(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest(http.MethodPost, "/v1/campaigns", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+fuzzKey)
		req.Header.Set("Content-Type", "multipart/form-data; boundary="+fuzzBoundary)
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("answered %d (Redis is up): %s", rec.Code, rec.Body)
		}
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("answered %d with a body that is not JSON: %q", rec.Code, rec.Body)
		}
		if rec.Code/100 == 2 {
			return
		}
		active, err := store.Active(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range active {
			t.Errorf("answered %d, but left campaign %s %s (held or not, it could send)", rec.Code, c.ID, c.Status)
		}
	})
}

func FuzzWebhookBody(f *testing.F) {
	handler, rdb := fuzzAPI(f)
	for _, seed := range []string{
		`{"event_type":"message:sent:new","whatsapp_account":{"phone":"+14155550100"},"chat":{"phone":"+12025550101"},"message":{"message_uid":"m-1","direction":"sent","origin":"Public API","timestamp":"2026-11-30 10:00:00 +0000","recipient":{"phone":"+12025550101"}}}`,
		`{"event_type":"message:sent:new","message":{"message_uid":"","timestamp":"yesterday"}}`,
		`{"event_type":"whatsapp:account:disconnected","whatsapp_account":{"phone":"+14155550100"}}`,
		`{"event_type":"whatsapp:account:connected","whatsapp_account":{"phone":"not a phone"}}`,
		`{"event_type":"chat:new"}`,
		`{"event_type":5}`,
		`{}`, `null`, `[]`, `"x"`, ``,
		`{"event_type":"message:sent:new","message":`,
		"\xff\xfe{",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if err := rdb.FlushDB(context.Background()).Err(); err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest(http.MethodPost, "/v1/webhooks/timelines/"+fuzzSecret, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		// The contract: an event is handled or ignored (200); a body that
		// is not an event is a 400 naming it; 503 only when Redis fails.
		if rec.Code != http.StatusOK && rec.Code != http.StatusBadRequest {
			t.Fatalf("answered %d (Redis is up): %s", rec.Code, rec.Body)
		}
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("answered %d with a body that is not JSON: %q", rec.Code, rec.Body)
		}
	})
}
