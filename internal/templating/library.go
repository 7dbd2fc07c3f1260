package templating

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// Library is the folder of named templates shipped with the product
// (templates/<name>.tmpl), which a campaign may name instead of sending
// its text.
type Library struct {
	Dir string
}

// libraryName is what a template name may be: it keeps every read inside
// the folder.
var libraryName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// NotInLibraryError is a name the library has no template for; its message
// lists the names it has.
type NotInLibraryError struct {
	Name      string
	Available []string
}

func (e *NotInLibraryError) Error() string {
	return fmt.Sprintf("no template named %q; available: %s", e.Name, strings.Join(e.Available, ", "))
}

// Source reads the template named name (".tmpl" may be written or not); a
// name it has none for is a *NotInLibraryError.
func (l Library) Source(name string) (string, error) {
	name = strings.TrimSuffix(name, ".tmpl")
	if libraryName.MatchString(name) {
		b, err := os.ReadFile(filepath.Join(l.Dir, name+".tmpl"))
		if err == nil {
			return string(b), nil
		}
	}
	return "", &NotInLibraryError{Name: name, Available: l.Names()}
}

// Names lists the library's templates, sorted; "(none)" when it is empty.
func (l Library) Names() []string {
	matches, _ := filepath.Glob(filepath.Join(l.Dir, "*.tmpl"))
	names := make([]string, 0, len(matches))
	for _, m := range matches {
		names = append(names, strings.TrimSuffix(filepath.Base(m), ".tmpl"))
	}
	sort.Strings(names)
	if len(names) == 0 {
		return []string{"(none)"}
	}
	return names
}
