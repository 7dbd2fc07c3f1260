package templating

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLibraryReadsTemplatesByName: a shipped template is read by its name,
// with or without .tmpl; a name it lacks, or one that would leave the
// folder, is refused with the names it has.
func TestLibraryReadsTemplatesByName(t *testing.T) {
	dir := t.TempDir()
	for name, text := range map[string]string{"welcome.tmpl": "Hi {{.name}}", "promo.tmpl": "Sale!", "notes.txt": "not a template"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(filepath.Dir(dir), "secret.tmpl"), []byte("outside"), 0o644); err != nil {
		t.Fatal(err)
	}
	lib := Library{Dir: dir}
	if got := strings.Join(lib.Names(), ","); got != "promo,welcome" {
		t.Errorf("names %q; want promo,welcome", got)
	}
	for _, name := range []string{"welcome", "welcome.tmpl"} {
		if src, err := lib.Source(name); err != nil || src != "Hi {{.name}}" {
			t.Errorf("Source(%q) = %q, %v", name, src, err)
		}
	}
	for _, name := range []string{"missing", "../secret", "notes", "Welcome", ""} {
		_, err := lib.Source(name)
		var notIn *NotInLibraryError
		if !errors.As(err, &notIn) || !strings.Contains(err.Error(), "available: promo, welcome") {
			t.Errorf("Source(%q): %v; want a NotInLibraryError listing promo, welcome", name, err)
		}
	}
	if got := (Library{Dir: t.TempDir()}).Names(); len(got) != 1 || got[0] != "(none)" {
		t.Errorf("an empty library's names: %v", got)
	}
}
