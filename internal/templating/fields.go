package templating

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/template"
	"text/template/parse"
)

// campaignKey is the name under which a template finds the campaign's own
// details ({{.campaign.name}}, {{.campaign.id}}), and campaignFields the
// fields it has.
const campaignKey = "campaign"

var campaignFields = map[string]bool{"name": true, "id": true}

// usage is what a template reads from its data, found by walking the parse
// tree once at Parse.
type usage struct {
	fields   []string // row columns, sorted
	campaign []string // "campaign.id", "campaign.name" it reads; sorted
	// readsCampaign: the template reads .campaign (the campaign details, or
	// a column of that name).
	readsCampaign bool
	// wholeData: the template picks a column by a computed name
	// ({{index . $key}}), which the walk cannot follow, so it needs all of
	// the row.
	wholeData bool
}

// scope says, at one point of the template, which values are the row (the
// template's data): dot, $, and which variables.
type scope struct {
	dotIsRow    bool
	dollarIsRow bool
	rowVars     map[string]bool // variable ("$r") → it holds the row
}

func (s scope) child() scope {
	s.rowVars = maps.Clone(s.rowVars)
	if s.rowVars == nil {
		s.rowVars = map[string]bool{}
	}
	return s
}

type walker struct {
	src           string // the template text, to turn node positions into lines
	fields        map[string]bool
	campaign      map[string]bool
	readsCampaign bool
	whole         bool
	err           *SyntaxError
}

// findUsage walks a parsed template and reports the data it reads, or the
// first problem that would make it fail for every recipient or let it run
// unbounded (see bounds.go).
func findUsage(tmpl *template.Template, src string) (usage, *SyntaxError) {
	w := &walker{
		src:      src,
		fields:   map[string]bool{},
		campaign: map[string]bool{},
	}
	top := scope{dotIsRow: true, dollarIsRow: true, rowVars: map[string]bool{}}
	if tmpl.Tree != nil {
		w.countOperations(tmpl.Tree.Root)
		w.list(tmpl.Tree.Root, top)
	}
	if w.err != nil {
		return usage{}, w.err
	}
	u := usage{
		fields:        slices.Sorted(maps.Keys(w.fields)),
		readsCampaign: w.readsCampaign,
		wholeData:     w.whole,
	}
	for f := range w.campaign {
		u.campaign = append(u.campaign, campaignKey+"."+f)
	}
	slices.Sort(u.campaign)
	return u, nil
}

func (w *walker) fail(pos parse.Pos, format string, args ...any) {
	if w.err != nil {
		return
	}
	p := min(max(int(pos), 0), len(w.src))
	w.err = &SyntaxError{Line: 1 + strings.Count(w.src[:p], "\n"), Msg: fmt.Sprintf(format, args...)}
}

// list walks a list of nodes; variables declared in it stay visible until its
// end, as in text/template. The walk stops at the first problem, so a huge
// template costs no more than maxOperations to refuse.
func (w *walker) list(l *parse.ListNode, s scope) {
	if l == nil {
		return
	}
	s = s.child()
	for _, n := range l.Nodes {
		if w.err != nil {
			return
		}
		w.node(n, s)
	}
}

func (w *walker) node(n parse.Node, s scope) {
	switch n := n.(type) {
	case *parse.ActionNode:
		w.declare(n.Pipe, s, false)
	case *parse.IfNode:
		inner := s.child()
		w.declare(n.Pipe, inner, false)
		w.list(n.List, inner)
		w.list(n.ElseList, inner)
	case *parse.WithNode:
		inner := s.child()
		isRow := w.declare(n.Pipe, inner, true)
		body := inner.child()
		body.dotIsRow = isRow // {{with .}} keeps the row; {{with .x}} does not
		w.list(n.List, body)
		w.list(n.ElseList, inner) // else (and else with) sees the outer dot
	case *parse.RangeNode:
		w.refuse(n.Position(), "{{range}}")
	case *parse.TemplateNode:
		w.refuse(n.Position(), "{{"+templateKeyword(w.src, n.Position())+"}}")
	case *parse.ListNode:
		w.list(n, s)
	}
	// TextNode and CommentNode read nothing; BreakNode and ContinueNode
	// exist only inside {{range}}, which is refused.
}

// declare walks the pipeline of an action and records what the variables it
// declares or assigns hold. It reports whether the pipeline's value is the
// row itself. follow says the action passes that value on ({{with .}}), so
// the walk can keep track of it; otherwise ({{.}}, {{if .}}) the row is used
// whole unless a variable takes it ({{$r := .}}).
func (w *walker) declare(p *parse.PipeNode, s scope, follow bool) bool {
	if p == nil {
		return false
	}
	isRow := w.pipeIsRow(p, s)
	if !isRow || !follow && len(p.Decl) == 0 {
		w.pipe(p, s)
	}
	for _, v := range p.Decl {
		s.rowVars[v.Ident[0]] = isRow
	}
	return isRow
}

// pipeIsRow reports whether a pipeline's value is the row, unchanged:
// ".", "$" at the top, or a variable holding the row.
func (w *walker) pipeIsRow(p *parse.PipeNode, s scope) bool {
	if p == nil || len(p.Cmds) != 1 || len(p.Cmds[0].Args) != 1 {
		return false
	}
	path, ok := rowPath(p.Cmds[0].Args[0], s)
	return ok && len(path) == 0
}

func (w *walker) pipe(p *parse.PipeNode, s scope) {
	if p == nil {
		return
	}
	for i, c := range p.Cmds {
		w.command(c, s, i > 0)
	}
}

func (w *walker) command(c *parse.CommandNode, s scope, piped bool) {
	if len(c.Args) == 0 || w.err != nil {
		return
	}
	if id, ok := c.Args[0].(*parse.IdentifierNode); ok {
		given := len(c.Args) - 1
		if piped {
			given++
		}
		if want, known := funcArity[id.Ident]; known && given != want {
			w.fail(id.Position(), "%s takes %s, got %d", id.Ident, plural(want, "argument"), given)
		}
		if least, known := funcMinArity[id.Ident]; known && given < least {
			w.fail(id.Position(), "%s takes at least %s, got %d", id.Ident, plural(least, "argument"), given)
		}
		w.checkCall(id, c.Args[1:])
		if id.Ident == "index" && len(c.Args) > 2 && w.index(c.Args[1], c.Args[2:], s) {
			return
		}
	}
	for _, a := range c.Args {
		w.arg(a, s)
	}
}

// index walks {{index ROW KEY...}}, and reports whether ROW was the row:
// {{index . "col"}} reads column "col". Literal keys extend the path; a
// computed one ({{index . $key}}) leaves the walk blind, so Render then
// passes the whole row.
func (w *walker) index(item parse.Node, keys []parse.Node, s scope) bool {
	path, ok := rowPath(item, s)
	if !ok {
		return false
	}
	for _, a := range keys {
		str, lit := a.(*parse.StringNode)
		if !lit {
			break
		}
		path = append(path, str.Text)
	}
	if len(path) == 0 {
		w.whole = true
	} else {
		w.ref(path, item.Position())
	}
	for _, a := range keys {
		w.arg(a, s)
	}
	return true
}

func (w *walker) arg(a parse.Node, s scope) {
	if path, ok := rowPath(a, s); ok {
		w.ref(path, a.Position())
		return
	}
	switch a := a.(type) {
	case *parse.PipeNode: // parenthesized, may declare: ($r := .)
		w.declare(a, s, false)
	case *parse.ChainNode:
		w.arg(a.Node, s)
	}
}

// rowPath reports whether a node reads from the row, and the field path it
// reads ([] for the row itself): .city → [city]; $.campaign.name →
// [campaign name]; $r.city with $r := . → [city]; (.campaign).id → [campaign id].
func rowPath(n parse.Node, s scope) ([]string, bool) {
	switch n := n.(type) {
	case *parse.DotNode:
		return nil, s.dotIsRow
	case *parse.FieldNode:
		return slices.Clone(n.Ident), s.dotIsRow
	case *parse.VariableNode:
		v := n.Ident[0]
		if v == "$" && s.dollarIsRow || s.rowVars[v] {
			return slices.Clone(n.Ident[1:]), true
		}
	case *parse.ChainNode:
		if p, ok := rowPath(n.Node, s); ok {
			return append(p, n.Field...), true
		}
	case *parse.PipeNode: // parenthesized: (.)
		if len(n.Decl) == 0 && len(n.Cmds) == 1 && len(n.Cmds[0].Args) == 1 {
			return rowPath(n.Cmds[0].Args[0], s)
		}
	}
	return nil, false
}

// ref records that the template reads path from the row.
func (w *walker) ref(path []string, pos parse.Pos) {
	switch {
	case len(path) == 0:
		w.fail(pos, "%s", wholeRowRefusal)
	case path[0] == campaignKey:
		// The campaign details, or, when the CSV has a "campaign" column,
		// that column (CheckColumns sorts that out).
		w.readsCampaign = true
		if len(path) == 1 {
			return
		}
		if !campaignFields[path[1]] {
			w.fail(pos, "the campaign has no field %q: use {{.campaign.name}} or {{.campaign.id}}", path[1])
			return
		}
		if len(path) > 2 {
			w.fail(pos, "{{.%s}} is text and has no field %q", strings.Join(path[:2], "."), path[2])
			return
		}
		w.campaign[path[1]] = true
	default:
		if len(path) > 1 {
			w.fail(pos, "column %q is text and has no field %q: write {{.%s}}", path[0], path[1], path[0])
			return
		}
		w.fields[path[0]] = true
	}
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
