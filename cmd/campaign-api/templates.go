package main

import "net/http"

// shippedTemplate is a template of TEMPLATES_DIR as GET /v1/templates lists
// it: what template_name can name, and its text.
type shippedTemplate struct {
	Name string `json:"name"`
	Text string `json:"text"`
}

// listTemplates: GET /v1/templates, the shipped templates by name, so that a
// client (the console) can offer them without knowing the server's files.
func (s *server) listTemplates(w http.ResponseWriter, r *http.Request) {
	out := []shippedTemplate{}
	for _, name := range s.templates.Names() {
		text, problem := s.readTemplate(name)
		if problem != nil {
			continue // "(none)", or a file removed since the listing
		}
		out = append(out, shippedTemplate{Name: name, Text: text})
	}
	writeOK(w, http.StatusOK, map[string]any{"templates": out})
}
