package main

import (
	"encoding/csv"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/wacampaign/wacampaign/internal/audience"
)

func TestSuppressionsAPI(t *testing.T) {
	h := newHarness(t)
	one := h.call(http.MethodPost, "/v1/suppressions", `{"phone":"(202) 555-0100","reason":"asked by phone"}`)
	if one.Code != http.StatusCreated {
		t.Fatalf("add one: %d %s", one.Code, one.Raw)
	}
	var e audience.Entry
	_ = json.Unmarshal(one.Data, &e)
	if e.Address != "+12025550100" || e.Source != audience.SourceAPI || !strings.Contains(e.Why, "asked by phone") {
		t.Errorf("entry %+v", e)
	}
	if res := h.call(http.MethodPost, "/v1/suppressions", `[{"phone":"+12025550101","source":"bounce"},{"jid":"12025550102@s.whatsapp.net"}]`); res.Code != http.StatusCreated {
		t.Fatalf("add many: %d %s", res.Code, res.Raw)
	}
	file := "phone,reason\n+1 202 555 0103,complained\n\n+12025550104,\n"
	res := h.do(h.request(http.MethodPost, "/v1/suppressions", strings.NewReader(file), "text/csv"))
	if res.Code != http.StatusCreated || !strings.Contains(res.Raw, `"suppressed":2`) {
		t.Fatalf("import CSV: %d %s", res.Code, res.Raw)
	}
	list := h.suppressions()
	if len(list) != 5 || list["+12025550101"].Source != audience.SourceBounce || list["+12025550102"].Address == "" ||
		list["+12025550103"].Source != audience.SourceImport {
		t.Errorf("list: %+v", list)
	}

	page := h.call(http.MethodGet, "/v1/suppressions?limit=2", "")
	var p struct {
		Suppressions []audience.Entry `json:"suppressions"`
		NextCursor   *string          `json:"next_cursor"`
		Total        int              `json:"total"`
	}
	_ = json.Unmarshal(page.Data, &p)
	if len(p.Suppressions) != 2 || p.NextCursor == nil || p.Total != 5 {
		t.Errorf("first page: %s", page.Raw)
	}

	export, err := http.DefaultClient.Do(h.request(http.MethodGet, "/v1/suppressions?format=csv", nil, ""))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(export.Body).ReadAll()
	export.Body.Close()
	if err != nil || len(rows) != 6 || rows[0][0] != "phone" {
		t.Errorf("export: %v rows, %v", len(rows), err)
	}

	if res := h.call(http.MethodDelete, "/v1/suppressions/+12025550100", ""); res.Code != http.StatusOK {
		t.Errorf("delete: %d %s", res.Code, res.Raw)
	}
	if res := h.call(http.MethodDelete, "/v1/suppressions/+12025550100", ""); res.Code != http.StatusNotFound {
		t.Errorf("delete again: %d %s", res.Code, res.Raw)
	}
	if _, ok := h.suppressions()["+12025550100"]; ok {
		t.Error("still suppressed after DELETE")
	}
}

func TestSuppressionsBadInput(t *testing.T) {
	h := newHarness(t)
	cases := []struct {
		name, contentType, body string
		field                   string
		in                      string // the answer's message names this
	}{
		{"bad phone", "application/json", `{"phone":"not a phone"}`, "phone", "not a phone number"},
		{"no phone", "application/json", `{"reason":"x"}`, "phone", "required"},
		{"unknown source", "application/json", `{"phone":"+12025550100","source":"sms"}`, "source", "keyword, api, import, bounce"},
		{"bad element", "application/json", `[{"phone":"+12025550100"},{"phone":"12"}]`, "1", "phone"},
		{"unknown field", "application/json", `{"phone":"+12025550100","why":"x"}`, "body", "unknown field"},
		{"not JSON", "application/json", `{"phone":`, "body", "not a suppression"},
		{"CSV without a phone column", "text/csv", "name,reason\nAna,x\n", "file", "no phone or jid column"},
		{"CSV bad row", "text/csv", "phone\n+12025550100\nnope\n", "row 3", "not a phone number"},
		{"CSV broken quotes", "text/csv", "phone\n\"+12025550100\n", "file", "not CSV"},
		{"empty CSV", "text/csv", "", "file", "empty"},
		{"other type", "text/plain", "+12025550100", "Content-Type", "text/csv"},
	}
	for _, c := range cases {
		res := h.do(h.request(http.MethodPost, "/v1/suppressions", strings.NewReader(c.body), c.contentType))
		if res.Code != http.StatusBadRequest || res.ErrorCode != "validation_error" || len(res.Errors) == 0 {
			t.Errorf("%s: %d %s", c.name, res.Code, res.Raw)
			continue
		}
		if res.Errors[0].Fields[0] != c.field || !strings.Contains(res.Raw, c.in) {
			t.Errorf("%s: want field %q and %q in %s", c.name, c.field, c.in, res.Raw)
		}
	}
	if len(h.suppressions()) != 0 {
		t.Error("a refused request stored something")
	}
	if res := h.call(http.MethodDelete, "/v1/suppressions/notaphone", ""); res.Code != http.StatusBadRequest || res.Errors[0].Fields[0] != "phone" {
		t.Errorf("delete a bad phone: %d %s", res.Code, res.Raw)
	}
	for _, q := range []string{"format=xml", "limit=0"} {
		if res := h.call(http.MethodGet, "/v1/suppressions?"+q, ""); res.Code != http.StatusBadRequest {
			t.Errorf("GET ?%s: %d %s", q, res.Code, res.Raw)
		}
	}
}
