package console

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strings"

	"go.uber.org/zap"
)

//go:embed web/templates/*.html
var templateFiles embed.FS

//go:embed web/static
var staticFiles embed.FS

// pages are the console's page templates, each the layout with one page's
// "content" (and the partials every page may use).
type pages map[string]*template.Template

// parsePages parses every page file over the layout and the partials.
func parsePages() (pages, error) {
	base, err := template.New("layout.html").Funcs(viewFuncs).ParseFS(templateFiles,
		"web/templates/layout.html", "web/templates/partials.html")
	if err != nil {
		return nil, fmt.Errorf("console: parse the layout: %w", err)
	}
	names, err := fs.Glob(templateFiles, "web/templates/*.html")
	if err != nil {
		return nil, err
	}
	out := pages{}
	for _, path := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(path, "web/templates/"), ".html")
		if name == "layout" || name == "partials" {
			continue
		}
		t, err := base.Clone()
		if err == nil {
			t, err = t.ParseFS(templateFiles, path)
		}
		if err != nil {
			return nil, fmt.Errorf("console: parse %s: %w", path, err)
		}
		out[name] = t
	}
	return out, nil
}

// page is what every page template gets.
type page struct {
	Title    string
	Section  string // the navigation entry to mark: campaigns, new, sequences, accounts, suppressions
	CSRF     string // "" when signed out
	SignedIn bool
	Error    *APIError // the API's refusal, shown at the top and by its fields
	Notice   string    // what just happened ("Campaign paused.")
	Data     any       // the page's own
}

// Field is what the API said about one form field (for the templates).
func (p page) Field(name string) string { return p.Error.ForField(name) }

// render writes a page with status.
func (c *Console) render(w http.ResponseWriter, status int, name string, p page) {
	t, ok := c.pages[name]
	if !ok {
		c.log.Error("no such page template", zap.String("page", name))
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout.html", p); err != nil {
		c.log.Error("render page", zap.String("page", name), zap.Error(err))
		http.Error(w, "internal error; it has been logged", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// fragment renders one named partial of a page's template set, for live
// updates.
func (c *Console) fragment(pageName, partial string, data any) (string, error) {
	t, ok := c.pages[pageName]
	if !ok {
		return "", fmt.Errorf("console: no page %q", pageName)
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, partial, data); err != nil {
		return "", fmt.Errorf("console: render %s: %w", partial, err)
	}
	return buf.String(), nil
}

// problem renders the error page: a sentence for the user, and the status.
func (c *Console) problem(w http.ResponseWriter, r *http.Request, s *session, status int, msg string) {
	p := page{Title: http.StatusText(status), Error: &APIError{Status: status, Message: msg}}
	if s != nil {
		p.SignedIn, p.CSRF = true, s.csrfToken()
	}
	c.render(w, status, "error", p)
}

// apiFailure shows what went wrong with an API call: the API's own refusal
// with its status, or, for anything else, a logged internal error.
func (c *Console) apiFailure(w http.ResponseWriter, r *http.Request, s *session, err error) {
	if apiErr, ok := err.(*APIError); ok {
		c.problem(w, r, s, apiErr.Status, apiErr.Message)
		return
	}
	if r.Context().Err() != nil {
		return // the browser left
	}
	c.log.Error("console request failed", zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.Error(err))
	c.problem(w, r, s, http.StatusInternalServerError, "Something went wrong on our side; it has been logged. Try again in a moment.")
}

// staticHandler serves web/static (the CSS and the script). no-cache: the
// browser revalidates, so a new release's files are used at once.
func staticHandler() (http.Handler, error) {
	sub, err := fs.Sub(staticFiles, "web/static")
	if err != nil {
		return nil, fmt.Errorf("console: static files: %w", err)
	}
	files := http.FileServer(http.FS(sub))
	return http.StripPrefix("/static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})), nil
}
