package templating

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// shippedDir is the repository's templates/ directory, the templates the
// product offers by name.
const shippedDir = "../../templates"

// TestShippedTemplates parses every file in templates/ and renders it for a
// row with its fields filled and for a row with them empty.
func TestShippedTemplates(t *testing.T) {
	entries, err := os.ReadDir(shippedDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) == 0 {
		t.Fatal("templates/ is empty")
	}
	fsys := os.DirFS(shippedDir)
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		t.Run(e.Name(), func(t *testing.T) {
			tmpl, err := ParseFS(fsys, e.Name())
			if err != nil {
				t.Fatal(err)
			}
			fields := tmpl.Fields()
			if len(fields) == 0 {
				t.Error("uses no column")
			}
			filled := map[string]string{"phone": "+14155550100"}
			empty := map[string]string{"phone": "+14155550100"}
			for _, f := range fields {
				filled[f] = f + " value" // the name first: firstName keeps it
				empty[f] = ""
			}
			if err := tmpl.CheckColumns(append([]string{"phone"}, fields...)); err != nil {
				t.Fatal(err)
			}
			camp := Campaign{ID: "c-1", Name: "Shipped test"}

			got, err := tmpl.Render(filled, camp)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range fields {
				if !strings.Contains(strings.ToLower(got), f) {
					t.Errorf("the value of %q does not appear in:\n%s", f, got)
				}
			}
			for _, bad := range []string{"{{", "}}", "/*", "<no value>", "map["} {
				if strings.Contains(got, bad) {
					t.Errorf("rendered text contains %q:\n%s", bad, got)
				}
			}
			// The leading comment must render to nothing by itself, without
			// relying on Render's trimming.
			var raw strings.Builder
			if err := tmpl.tmpl.Execute(&raw, filled); err != nil {
				t.Fatal(err)
			}
			if first := strings.SplitN(raw.String(), "\n", 2)[0]; strings.TrimSpace(first) == "" || first != strings.TrimSpace(first) {
				t.Errorf("first line %q: the comment leaves a blank line or whitespace", first)
			}
			if strings.Contains(tmpl.Source(), "\r") {
				t.Error("CRLF line endings")
			}

			got, err = tmpl.Render(empty, camp)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(got, "Hi there") {
				t.Errorf("with empty fields it does not greet with the default:\n%s", got)
			}
			t.Logf("\n%s", got)
		})
	}
	if _, err := ParseFS(fsys, filepath.Join("..", "go.mod")); err == nil {
		t.Error("ParseFS read outside its directory")
	}
}
