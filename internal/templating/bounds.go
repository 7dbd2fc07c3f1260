package templating

import (
	"fmt"
	"strings"
	"text/template"
	"text/template/parse"
	"unicode/utf8"
)

// The limits that keep every accepted template bounded in time and memory
// (the package doc says how they add up).
const (
	// maxOperations bounds the actions ({{...}}, {{if}}, {{with}}),
	// commands and operands of a template. Without loops each runs at most
	// once per Render, so this bounds text/template's own work. The shipped
	// templates use under 20; a 2000-character message needs far fewer than
	// 1000.
	maxOperations = 1000

	// maxPrintfWidth bounds each width and precision in a printf format:
	// "%01000000d" would otherwise build a megabyte from one argument.
	maxPrintfWidth = 64

	// maxMessageBytes is where Render stops writing (maxMessageBytesFor
	// MaxLength).
	maxMessageBytes = utf8.UTFMax * (MaxLength + 1)

	// maxFunctionBytes bounds the text the functions of one Render read and
	// return, together (see workBudget). A row holds at most 64 KiB
	// (internal/campaign's maxFieldsLength) and a message at most
	// maxMessageBytes, so a useful template stays far below it.
	maxFunctionBytes = 64 << 10
)

// refusedReasons says why each refused action cannot be used.
var refusedReasons = map[string]string{
	"{{range}}":    "a row's fields are plain text, so there is nothing to loop over; use {{if}} or {{with}} for text that depends on a column",
	"{{template}}": "a message is one template; write the text where it goes",
	"{{block}}":    "a message is one template; write the text where it goes",
	"{{define}}":   "a message is one template; write the text where it goes",
	"call":         "a row's fields are plain text, not functions",
}

// wholeRowRefusal is the message for a template that uses the row itself
// ({{.}} where dot is the row, or $): it would print every column, such as
// internal notes, to the customer.
const wholeRowRefusal = `{{.}} here is the whole row and would put every column in the message; ` +
	`name the column instead, like {{.first_name}}, or {{index . "2nd_phone"}} for one whose name starts with a digit`

// refuse fails the walk for an action templates cannot use.
func (w *walker) refuse(pos parse.Pos, action string) {
	w.fail(pos, "templates cannot use %s: %s", action, refusedReasons[action])
}

// countOperations fails the walk if the tree under n has more than
// maxOperations actions, commands and operands, nested ones included. It
// stops counting there, so refusing a huge template costs no more.
func (w *walker) countOperations(n parse.Node) {
	left := maxOperations
	var count func(parse.Node) bool // false once over the limit
	count = func(n parse.Node) bool {
		switch n := n.(type) {
		case *parse.ListNode:
			for _, c := range n.Nodes {
				if !count(c) {
					return false
				}
			}
			return true
		case *parse.ActionNode:
			left--
			return left >= 0 && count(n.Pipe)
		case *parse.IfNode:
			return count(&n.BranchNode)
		case *parse.WithNode:
			return count(&n.BranchNode)
		case *parse.RangeNode:
			return count(&n.BranchNode)
		case *parse.BranchNode:
			left--
			return left >= 0 && count(n.Pipe) && (n.List == nil || count(n.List)) && (n.ElseList == nil || count(n.ElseList))
		case *parse.PipeNode:
			for _, c := range n.Cmds {
				left -= len(c.Args)
				if left < 0 {
					return false
				}
				for _, a := range c.Args {
					if !count(a) {
						return false
					}
				}
			}
			return true
		case *parse.ChainNode:
			return count(n.Node)
		}
		return true // text, comments and operands without parts
	}
	if !count(n) && w.err == nil {
		w.err = &SyntaxError{Msg: fmt.Sprintf("the template has more than %d actions, fields and values; a message of %d characters needs far fewer",
			maxOperations, MaxLength)}
	}
}

// checkCall refuses the built-in functions that could run unbounded: call,
// and printf with a format that is not a checked literal. args are the
// arguments written after the function's name.
func (w *walker) checkCall(fn *parse.IdentifierNode, args []parse.Node) {
	switch fn.Ident {
	case "call":
		w.refuse(fn.Position(), "call")
	case "printf":
		format, ok := firstArg(args).(*parse.StringNode)
		if !ok {
			w.fail(fn.Position(), `printf needs its format as a quoted string written in the template, like {{printf "%%.10s" .city}}`)
			return
		}
		if problem := formatProblem(format.Text); problem != "" {
			w.fail(format.Position(), "printf format %q: %s", format.Text, problem)
		}
	}
}

func firstArg(args []parse.Node) parse.Node {
	if len(args) == 0 {
		return nil
	}
	return args[0]
}

// formatProblem says why a printf format could print much more than its
// arguments, or "" if it cannot: every width and precision is a number of
// at most maxPrintfWidth, and each verb uses the next argument once (no
// "%[1]s%[1]s..." repeating one argument, no "*" width taken from one).
func formatProblem(format string) string {
	for i := 0; i < len(format); i++ {
		if format[i] != '%' {
			continue
		}
		j := i + 1
		for j < len(format) && strings.IndexByte("+-# 0", format[j]) >= 0 {
			j++
		}
		j, problem := formatNumber(format, j, "width")
		if problem == "" && j < len(format) && format[j] == '.' {
			j, problem = formatNumber(format, j+1, "precision")
		}
		if problem == "" && j < len(format) && format[j] == '[' {
			_, problem = formatNumber(format, j, "")
		}
		if problem != "" {
			return problem
		}
		i = j // the verb; for "%%", the second '%'
	}
	return ""
}

// formatNumber reads the width or precision at format[j:] and returns the
// index after it, or a problem.
func formatNumber(format string, j int, what string) (int, string) {
	if j < len(format) {
		switch format[j] {
		case '[':
			return j, "argument indexes like [1] are not allowed: each verb prints the next argument"
		case '*':
			return j, "a * " + what + " is not allowed: write the " + what + " as a number up to 64"
		}
	}
	n, start := 0, j
	for j < len(format) && '0' <= format[j] && format[j] <= '9' {
		if n <= maxPrintfWidth {
			n = n*10 + int(format[j]-'0')
		}
		j++
	}
	if j > start && n > maxPrintfWidth {
		return j, what + " " + format[start:j] + " is over the limit of 64"
	}
	return j, ""
}

// templateKeyword tells {{template}} from {{block}}, which the parser turns
// into a {{define}} and a {{template}}: it is the word before the name at
// pos.
func templateKeyword(src string, pos parse.Pos) string {
	before := strings.TrimRight(src[:min(max(int(pos), 0), len(src))], " \t\r\n")
	if strings.HasSuffix(before, "block") {
		return "block"
	}
	return "template"
}

// definitionProblem reports a {{define}} in text, which parsed as tmpl under
// name. A definition shows as a second template, except one named like the
// template itself around an empty body: it takes the body's place, so the
// text is parsed once more under another name to see it.
func definitionProblem(tmpl *template.Template, name, text string) *SyntaxError {
	pos, found := parse.Pos(-1), false
	for _, d := range tmpl.Templates() {
		if d.Name() != name && d.Tree != nil && (!found || d.Tree.Root.Pos < pos) {
			pos, found = d.Tree.Root.Pos, true
		}
	}
	if !found && strings.Contains(text, "define") {
		other, err := template.New(name + " (checked)").Funcs(stringFuncs(nil, nil)).Parse(text)
		if found = err == nil && len(other.Templates()) > 1; found && tmpl.Tree != nil {
			pos = tmpl.Tree.Root.Pos
		}
	}
	if !found {
		return nil
	}
	w := &walker{src: text}
	w.refuse(pos, "{{define}}")
	return w.err
}

// maxMessageBytesFor is where rendering stops for a text limit of
// maxLength code points: a code point takes at most 4 bytes in UTF-8, so
// text past it has more than maxLength+1 code points whatever they are
// (whitespace at the end aside), and a message just over maxLength is still
// measured whole.
func maxMessageBytesFor(maxLength int) int {
	return utf8.UTFMax * (maxLength + 1)
}
