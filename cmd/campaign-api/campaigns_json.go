package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/wacampaign/wacampaign/internal/campaign"
)

// createCampaignJSON is POST /v1/campaigns with a JSON body, for other apps:
//
//	{"name":"…","template":"Hi {{.name}}","accounts":["+1…"],"send_at":"…",
//	 "label":"…","file_uid":"…","window":{"days":"mon-fri","hours":"09:00-18:00","zone":"…"},
//	 "contacts":[{"phone":"+1…","name":"Ann"}, …]}
//
// The contacts array is read one object at a time, never held whole: it is
// imported as it arrives when the template came before it, and otherwise
// spooled to a temporary file (one object a line) until the body is read,
// as the multipart form does.
func (s *server) createCampaignJSON(w http.ResponseWriter, r *http.Request) {
	dec := json.NewDecoder(bufio.NewReaderSize(r.Body, 64<<10))
	dec.UseNumber()
	if err := expectDelim(dec, '{'); err != nil {
		s.jsonBodyError(w, r, err)
		return
	}
	form := map[string]string{}
	var (
		spooled      *os.File
		seenContacts bool
	)
	defer func() { discardSpool(spooled) }()
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			s.jsonBodyError(w, r, err)
			return
		}
		key, _ := tok.(string)
		switch key {
		case "contacts":
			if seenContacts {
				writeProblem(w, fieldProblem("contacts", "contacts is sent twice"))
				return
			}
			seenContacts = true
			if err := expectDelim(dec, '['); err != nil {
				writeProblem(w, fieldProblem("contacts", "contacts is a JSON array of objects"))
				return
			}
			if form["template"] != "" || form["template_name"] != "" {
				draft, problem := s.draft(form)
				if problem != nil {
					writeProblem(w, problem)
					return
				}
				result, err := s.importer.ImportJSON(r.Context(), draft, dec, true)
				if err != nil {
					s.importFailed(w, r, err)
					return
				}
				// The campaign is under way: the object must end here.
				s.endAfterStreamedContacts(w, r, result, func() (string, error) {
					if dec.More() {
						tok, err := dec.Token()
						if err != nil {
							return "", err
						}
						key, _ := tok.(string)
						return key, nil
					}
					if err := expectDelim(dec, '}'); err != nil {
						return "", err
					}
					return "", io.EOF
				})
				return
			}
			if spooled, err = spoolJSON(dec); err != nil {
				s.jsonBodyError(w, r, err)
				return
			}
		case "name", "template", "template_name", "send_at", "label", "file_uid":
			var v string
			if err := dec.Decode(&v); err != nil {
				writeProblem(w, fieldProblem(key, key+" is a string"))
				return
			}
			form[key] = v
		case "accounts":
			var v []string
			if err := dec.Decode(&v); err != nil {
				writeProblem(w, fieldProblem(key, "accounts is a list of phone numbers"))
				return
			}
			form[key] = strings.Join(v, ",")
		case "window":
			var v struct{ Days, Hours, Zone string }
			if err := dec.Decode(&v); err != nil {
				writeProblem(w, fieldProblem(key, `window is {"days":"mon-fri","hours":"09:00-18:00","zone":"Europe/Madrid"}`))
				return
			}
			form["window_days"], form["window_hours"], form["window_zone"] = v.Days, v.Hours, v.Zone
		default:
			writeError(w, http.StatusBadRequest, "validation_error", fmt.Sprintf("unknown field %q", key),
				[]campaign.Problem{{Fields: []string{key}, Msg: "unknown field; known fields: accounts, contacts, file_uid, label, name, send_at, template, template_name, window"}})
			return
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		s.jsonBodyError(w, r, err)
		return
	}
	switch {
	case !seenContacts:
		writeError(w, http.StatusBadRequest, "validation_error", "no contacts: send them as the array contacts",
			[]campaign.Problem{{Fields: []string{"contacts"}, Msg: "missing"}})
	default:
		draft, problem := s.draft(form)
		if problem != nil {
			writeProblem(w, problem)
			return
		}
		if _, err := spooled.Seek(0, io.SeekStart); err != nil {
			s.internalError(w, r, err)
			return
		}
		sdec := json.NewDecoder(bufio.NewReaderSize(spooled, 64<<10))
		sdec.UseNumber()
		result, err := s.importer.ImportJSON(r.Context(), draft, sdec, false)
		if err != nil {
			s.importFailed(w, r, err)
			return
		}
		s.created(w, r, result)
	}
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("expected %q, found %v", want, tok)
	}
	return nil
}

// spoolJSON copies the rest of a JSON array, one value a line, to a
// temporary file, and reads the closing ']'.
func spoolJSON(dec *json.Decoder) (*os.File, error) {
	f, err := os.CreateTemp("", "contacts-*.jsonl")
	if err != nil {
		return nil, err
	}
	if err := copyJSONLines(dec, f); err != nil {
		discardSpool(f)
		return nil, err
	}
	return f, nil
}

// copyJSONLines writes the rest of dec's array to w, one value a line, and
// reads the closing ']'.
func copyJSONLines(dec *json.Decoder, w io.Writer) error {
	bw := bufio.NewWriter(w)
	for dec.More() {
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return err
		}
		bw.Write(v)
		bw.WriteByte('\n')
	}
	if _, err := dec.Token(); err != nil {
		return err
	}
	return bw.Flush()
}

func (s *server) jsonBodyError(w http.ResponseWriter, r *http.Request, err error) {
	var tooBig *http.MaxBytesError
	var syntax *json.SyntaxError
	switch {
	case errors.As(err, &tooBig):
		s.tooLarge(w, "")
	case errors.As(err, &syntax):
		writeProblem(w, fieldProblem("body", fmt.Sprintf("the body is not valid JSON at byte %d: %v", syntax.Offset, err)))
	case r.Context().Err() != nil:
		return
	default:
		writeProblem(w, fieldProblem("body", "the body is not the JSON expected: "+err.Error()))
	}
}
