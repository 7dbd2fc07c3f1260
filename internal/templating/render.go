package templating

import (
	"bytes"
	"errors"
	"text/template"
	"unicode"
	"unicode/utf8"
)

// renderer executes one Template for one recipient at a time. Its functions
// charge its own budget, which text/template cannot pass to a function, so
// each renderer has its own clone of the parsed template (sharing the parse
// tree) with functions bound to that budget. Template keeps them in a pool.
type renderer struct {
	tmpl   *template.Template
	budget workBudget
	picks  pickState
	out    boundedWriter
}

func newRenderer(parsed *template.Template) (*renderer, error) {
	clone, err := parsed.Clone()
	if err != nil {
		return nil, err
	}
	r := &renderer{}
	r.tmpl = clone.Funcs(stringFuncs(&r.budget, &r.picks))
	return r, nil
}

// execute renders data into r.out with a full budget, writing at most
// limit bytes; pick chooses by seed.
func (r *renderer) execute(data any, seed uint64, limit int) error {
	r.budget = workBudget{left: maxFunctionBytes}
	r.picks = pickState{seed: seed}
	r.out.reset(limit)
	return r.tmpl.Execute(&r.out, data)
}

// errMessageTooLong is boundedWriter's error; Render turns it into a
// *TooLongError.
var errMessageTooLong = errors.New("the message is over the length limit")

// boundedWriter keeps what a template writes, without leading whitespace
// (Render trims it anyway), and fails once that would pass its limit
// (maxMessageBytesFor the provider's text limit): rendering stops there, so
// no message longer than that is ever built, whatever the template and the
// row. It keeps what fits, for a preview.
type boundedWriter struct {
	buf     []byte
	limit   int
	started bool // something other than whitespace was written
}

func (w *boundedWriter) reset(limit int) {
	w.buf = w.buf[:0]
	w.limit = limit
	w.started = false
}

func (w *boundedWriter) Write(p []byte) (int, error) {
	n := len(p)
	if !w.started {
		p = bytes.TrimLeftFunc(p, unicode.IsSpace)
		if len(p) == 0 {
			return n, nil
		}
		w.started = true
	}
	if room := w.limit - len(w.buf); len(p) > room {
		w.buf = append(w.buf, p[:room]...)
		w.buf = w.buf[:len(w.buf)-partialRuneBytes(w.buf)]
		return 0, errMessageTooLong
	}
	w.buf = append(w.buf, p...)
	return n, nil
}

// partialRuneBytes is the length of an incomplete UTF-8 sequence at the end
// of b, as a cut at a byte limit leaves.
func partialRuneBytes(b []byte) int {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if utf8.FullRune(b[i:]) {
				return 0
			}
			return len(b) - i
		}
	}
	return 0
}
