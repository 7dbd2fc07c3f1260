package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"

	"github.com/wacampaign/wacampaign/internal/campaign"
)

// createCampaignJSON is POST /v1/campaigns with a JSON body, for other apps:
//
//	{"name":"…","template":"Hi {{.name}}","accounts":["+1…"],"send_at":"…",
//	 "label":"…","file_uid":"…","window":{"days":"mon-fri","hours":"09:00-18:00","zone":"…"},
//	 "typing_simulation":true,"presence_simulation":true,"cap_policy":"defer",
//	 "contacts":[{"phone":"+1…","name":"Ann"},{"jid":"…@g.us","name":"Team"}, …]}
//
// Keys may come in any order (creation.go). The contacts array is read one
// object at a time, never held whole: it is imported as it arrives when the
// template came before it, and otherwise spooled to a temporary file (one
// object a line) until the body is read, as the multipart form does.
func (s *server) createCampaignJSON(w http.ResponseWriter, r *http.Request) {
	dec := json.NewDecoder(bufio.NewReaderSize(r.Body, 64<<10))
	dec.UseNumber()
	if err := expectDelim(dec, '{'); err != nil {
		s.jsonBodyError(w, r, err)
		return
	}
	c := s.newCreation(w, r)
	defer c.close()
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			c.fail(jsonReadError(err))
			return
		}
		key, _ := tok.(string)
		if key != "contacts" {
			if err := readJSONField(c, dec, key); err != nil {
				c.fail(err)
				return
			}
			continue
		}
		if err := expectDelim(dec, '['); err != nil {
			c.fail(fieldProblem("contacts", "contacts is a JSON array of objects"))
			return
		}
		stream := func(ctx context.Context, d campaign.Draft) (*campaign.Campaign, error) {
			return s.importer.ImportJSON(ctx, d, dec, true)
		}
		if !c.contacts(stream, func() (*os.File, error) { return spoolJSON(dec) }) {
			return
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		c.fail(jsonReadError(err))
		return
	}
	missing := &campaign.InputError{Msg: "no contacts: send them as the array contacts",
		Problems: []campaign.Problem{{Fields: []string{"contacts"}, Msg: "missing"}}}
	c.finish(missing, func(ctx context.Context, d campaign.Draft, f *os.File) (*campaign.Campaign, error) {
		sdec := json.NewDecoder(bufio.NewReaderSize(f, 64<<10))
		sdec.UseNumber()
		return s.importer.ImportJSON(ctx, d, sdec, false)
	})
}

// readJSONField reads the value of key, a field other than contacts, into c.
func readJSONField(c *creation, dec *json.Decoder, key string) error {
	switch key {
	case "name", "template", "template_name", "send_at", "label", "file_uid", "cap_policy":
		var v string
		if err := decodeField(dec, &v, key, key+" is a string"); err != nil {
			return err
		}
		return c.setField(key, v)
	case "accounts":
		var v []string
		if err := decodeField(dec, &v, key, "accounts is a list of phone numbers"); err != nil {
			return err
		}
		return c.setField(key, strings.Join(v, ","))
	case "draft", "typing_simulation", "presence_simulation":
		var v bool
		if err := decodeField(dec, &v, key, key+" is true or false"); err != nil {
			return err
		}
		return c.setField(key, strconv.FormatBool(v))
	case "variants", "winner":
		var v json.RawMessage
		if err := decodeField(dec, &v, key, key+" is JSON (see the form's field)"); err != nil {
			return err
		}
		return c.setField(key, string(v))
	case "window":
		var v struct{ Days, Hours, Zone string }
		if err := decodeField(dec, &v, key, `window is {"days":"mon-fri","hours":"09:00-18:00","zone":"Europe/Madrid"}`); err != nil {
			return err
		}
		return errors.Join(c.setField("window_days", v.Days), c.setField("window_hours", v.Hours), c.setField("window_zone", v.Zone))
	}
	return &campaign.InputError{Msg: fmt.Sprintf("unknown field %q", key),
		Problems: []campaign.Problem{{Fields: []string{key}, Msg: "unknown field; known fields: accounts, cap_policy, contacts, draft, file_uid, label, name, presence_simulation, send_at, template, template_name, typing_simulation, variants, window, winner"}}}
}

// decodeField decodes a field's value: a value of the wrong type is the
// user's mistake (wrongType), anything else a body that broke off or is not
// JSON.
func decodeField(dec *json.Decoder, v any, key, wrongType string) error {
	err := dec.Decode(v)
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		return fieldProblem(key, wrongType)
	}
	return jsonReadError(err)
}

// jsonReadError marks a failure to read the JSON body (nil: none).
func jsonReadError(err error) error {
	var syntax *json.SyntaxError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &syntax):
		return &campaign.ReadError{Err: fmt.Errorf("not valid JSON at byte %d: %w", syntax.Offset, err)}
	case err == io.EOF:
		return &campaign.ReadError{Err: io.ErrUnexpectedEOF} // the body ended inside the object
	}
	return &campaign.ReadError{Err: err}
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
// reads the closing ']'. A failure to read the body is a ReadError; one to
// write w is not.
func copyJSONLines(dec *json.Decoder, w io.Writer) error {
	bw := bufio.NewWriter(w)
	for dec.More() {
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return jsonReadError(err)
		}
		bw.Write(v)
		bw.WriteByte('\n')
	}
	if _, err := dec.Token(); err != nil {
		return jsonReadError(err)
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
