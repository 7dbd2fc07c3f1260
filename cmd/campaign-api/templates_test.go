package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

// GET /v1/templates lists every shipped template with the text that
// template_name would use, and only to a caller with a key.
func TestListTemplates(t *testing.T) {
	h := newHarness(t)
	res := h.call("GET", "/v1/templates", "")
	if res.Code != http.StatusOK {
		t.Fatalf("GET /v1/templates: %d %s", res.Code, res.Raw)
	}
	var got struct {
		Templates []shippedTemplate `json:"templates"`
	}
	if err := json.Unmarshal(res.Data, &got); err != nil {
		t.Fatal(err)
	}
	want := []string{"promo", "reminder", "welcome"}
	if len(got.Templates) != len(want) {
		t.Fatalf("templates %+v, want %v", got.Templates, want)
	}
	for i, name := range want {
		file, err := os.ReadFile(filepath.Join(h.cfg.TemplatesDir, name+".tmpl"))
		if err != nil {
			t.Fatal(err)
		}
		if got.Templates[i].Name != name || got.Templates[i].Text != string(file) {
			t.Errorf("template %d: %q with %d bytes of text, want %q with the file's %d", i, got.Templates[i].Name, len(got.Templates[i].Text), name, len(file))
		}
	}

	req, _ := http.NewRequest("GET", h.api.URL+"/v1/templates", nil)
	if res := h.do(req); res.Code != http.StatusUnauthorized {
		t.Errorf("without a key: %d, want 401", res.Code)
	}
}
