package campaign

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/wacampaign/wacampaign/internal/templating"
)

// jsonInput reads contacts sent as JSON objects ({"phone":"+1…","name":"Ann"})
// one at a time, from inside a JSON array or from JSON lines. The first
// object's keys are the columns, like a CSV header: the template is checked
// against them. Later objects may leave keys out (empty values); keys the
// first did not have are ignored, since no template field can name them.
type jsonInput struct {
	layout
	dec     *json.Decoder
	inArray bool
	index   int            // objects read so far
	first   *[]jsonField   // the first object, read to learn the columns
	byName  map[string]int // normalised key → column
}

type jsonField struct {
	key   string
	value json.RawMessage
}

func openJSONContacts(dec *json.Decoder, inArray bool) (*jsonInput, error) {
	in := &jsonInput{dec: dec, inArray: inArray, layout: layout{file: -1}, byName: map[string]int{}}
	if !dec.More() {
		return nil, FieldError("contacts", "contacts is empty")
	}
	first, err := readObject(dec)
	if err != nil {
		if brokenJSON(err) {
			return nil, FieldError("body", "the body is not valid JSON: contacts[1]: "+err.Error())
		}
		return nil, FieldError("contacts", "contacts[1]: "+err.Error())
	}
	in.first = &first
	for _, f := range first {
		name := templating.NormalizeColumn(f.key)
		if name == "" {
			continue
		}
		if _, dup := in.byName[name]; dup {
			return nil, FieldError("contacts", fmt.Sprintf("contacts[1] has two keys that are both %q in a template", name))
		}
		in.byName[name] = len(in.columns)
		in.header = append(in.header, f.key)
		in.columns = append(in.columns, name)
	}
	in.file = indexOf(in.columns, fileColumn)
	in.keys = findKeyColumns(in.columns)
	if len(in.keys) == 0 {
		return nil, FieldError("contacts", fmt.Sprintf("contacts[1] has no phone, jid or chat_id (keys: %s)", strings.Join(clipAll(in.header, 10), ", ")))
	}
	return in, nil
}

func (in *jsonInput) columnsOf() *layout { return &in.layout }

func (in *jsonInput) next() ([]string, int, string, error) {
	var obj []jsonField
	if in.first != nil {
		obj, in.first = *in.first, nil
	} else {
		if !in.dec.More() {
			if in.inArray {
				if _, err := in.dec.Token(); err != nil { // the closing ]
					return nil, 0, "", err
				}
			}
			return nil, 0, "", io.EOF
		}
		var err error
		obj, err = readObject(in.dec)
		if err != nil {
			if brokenJSON(err) {
				return nil, 0, "", fmt.Errorf("contacts[%d]: %w", in.index+1, err)
			}
			in.index++
			return nil, in.index, err.Error(), nil
		}
	}
	in.index++
	values := make([]string, len(in.columns))
	for _, f := range obj {
		i, ok := in.byName[templating.NormalizeColumn(f.key)]
		if !ok {
			continue
		}
		v, err := textOf(f.value)
		if err != nil {
			return nil, in.index, fmt.Sprintf("%s: %v", f.key, err), nil
		}
		values[i] = v
	}
	return values, in.index, "", nil
}

// brokenJSON tells a body that is not JSON at all (the import stops) from
// a value that is JSON but not a contact (that contact is rejected).
func brokenJSON(err error) bool {
	var syntax *json.SyntaxError
	return errors.As(err, &syntax) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
}

// readObject reads one JSON object keeping its keys in order. A value that
// is not an object is consumed and reported, so the next one can be read.
func readObject(dec *json.Decoder) ([]jsonField, error) {
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return nil, err
	}
	inner := json.NewDecoder(strings.NewReader(string(raw)))
	inner.UseNumber()
	tok, err := inner.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("a contact is a JSON object, not %s", strings.TrimSpace(string(raw[:min(len(raw), 20)])))
	}
	var out []jsonField
	for inner.More() {
		keyTok, err := inner.Token()
		if err != nil {
			return nil, err
		}
		var v json.RawMessage
		if err := inner.Decode(&v); err != nil {
			return nil, err
		}
		out = append(out, jsonField{key: keyTok.(string), value: v})
	}
	return out, nil
}

// textOf turns a JSON value into a template field's text: strings as they
// are, numbers as written, booleans as true/false, null as empty.
func textOf(v json.RawMessage) (string, error) {
	s := strings.TrimSpace(string(v))
	switch {
	case s == "null":
		return "", nil
	case s == "true" || s == "false":
		return s, nil
	case strings.HasPrefix(s, `"`):
		var str string
		if err := json.Unmarshal(v, &str); err != nil {
			return "", err
		}
		return str, nil
	case strings.HasPrefix(s, "{") || strings.HasPrefix(s, "["):
		return "", errors.New("is not text (an object or a list)")
	}
	if _, err := strconv.ParseFloat(s, 64); err != nil {
		return "", fmt.Errorf("is not a JSON value: %s", s)
	}
	return s, nil
}
