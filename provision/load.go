package provision

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

// Load reads a spec: one .hcl file, or every .hcl file of a folder as one
// spec. vars are the -var values; each must be declared by a variable
// block. Every problem found is in the returned diagnostics, errors and
// warnings; the Spec is nil when there is an error.
func Load(path string, vars map[string]string) (*Spec, hcl.Diagnostics) {
	spec, _, diags := LoadFiles(path, vars)
	return spec, diags
}

// WriteDiagnostics prints diags as hcl's text writer does: file:line:col,
// the summary, the offending source line with the range underlined, and the
// detail. files are the spec's sources ([Spec.Files], or the map
// [LoadFiles] gives when Load failed).
func WriteDiagnostics(w io.Writer, files map[string]*hcl.File, diags hcl.Diagnostics) error {
	return hcl.NewDiagnosticTextWriter(w, files, 100, false).WriteDiagnostics(diags)
}

// LoadFiles is [Load] that also returns the parsed sources, which
// [WriteDiagnostics] needs to show the lines of a failed spec.
func LoadFiles(path string, vars map[string]string) (*Spec, map[string]*hcl.File, hcl.Diagnostics) {
	files, dir, diags := readFiles(path)
	srcs := map[string]*hcl.File{}
	for _, f := range files {
		srcs[f.name] = f.file
	}
	if diags.HasErrors() {
		return nil, srcs, diags
	}
	l := &loader{files: files, dir: dir}
	spec := l.load(vars)
	diags = append(diags, l.diags...)
	if diags.HasErrors() {
		return nil, srcs, diags
	}
	spec.Files = srcs
	return spec, srcs, diags
}

type srcFile struct {
	name string
	file *hcl.File
}

func readFiles(path string) ([]srcFile, string, hcl.Diagnostics) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, "", hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Cannot read the spec",
			Detail: fmt.Sprintf("%v. Give a .hcl file or a folder holding .hcl files.", err)}}
	}
	var names []string
	dir := path
	if fi.IsDir() {
		names, _ = filepath.Glob(filepath.Join(path, "*.hcl"))
		if len(names) == 0 {
			return nil, "", hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "No spec files",
				Detail: fmt.Sprintf("The folder %s has no .hcl file; run unibus init to write a starter spec.", path)}}
		}
	} else {
		names, dir = []string{path}, filepath.Dir(path)
	}
	sort.Strings(names)
	p := hclparse.NewParser()
	var out []srcFile
	var diags hcl.Diagnostics
	for _, n := range names {
		f, d := p.ParseHCLFile(n)
		diags = append(diags, d...)
		if f != nil {
			out = append(out, srcFile{n, f})
		}
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		abs = dir
	}
	return out, abs, diags
}

type loader struct {
	files []srcFile
	dir   string
	diags hcl.Diagnostics
}

func (l *loader) errorf(rng hcl.Range, summary, detail string, args ...any) {
	r := rng
	l.diags = append(l.diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary,
		Detail: fmt.Sprintf(detail, args...), Subject: &r})
}

func (l *loader) warnf(rng hcl.Range, summary, detail string, args ...any) {
	r := rng
	l.diags = append(l.diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: summary,
		Detail: fmt.Sprintf(detail, args...), Subject: &r})
}

var preSchema = &hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{
	{Type: "variable", LabelNames: []string{"name"}},
	{Type: "locals"},
}}

func (l *loader) load(vars map[string]string) *Spec {
	bodies := make([]*hcl.File, 0, len(l.files))
	for _, f := range l.files {
		bodies = append(bodies, f.file)
		l.scanSecrets(f.file)
	}
	body := hcl.MergeFiles(bodies)
	pre, rest, d := body.PartialContent(preSchema)
	l.diags = append(l.diags, d...)
	ctx := &hcl.EvalContext{Variables: map[string]cty.Value{}, Functions: functions()}
	ctx.Variables["var"] = l.variables(pre.Blocks.OfType("variable"), vars)
	ctx.Variables["local"] = l.locals(pre.Blocks.OfType("locals"), ctx)

	var fs fileSchema
	l.diags = append(l.diags, gohcl.DecodeBody(rest, ctx, &fs)...)
	if l.diags.HasErrors() && fs.Cluster.Name == "" && len(fs.Nodes) == 0 {
		return nil
	}
	s := &Spec{Dir: l.dir}
	c := &check{loader: l, ctx: ctx, spec: s}
	c.nodes(fs.Nodes)
	c.cluster(&fs.Cluster, len(fs.Nodes))
	c.crossNode(fs.Nodes)
	c.rollout(fs.Cluster.Rollout)
	return s
}

// variables evaluates the variable blocks: default, overridden by -var.
func (l *loader) variables(blocks hcl.Blocks, given map[string]string) cty.Value {
	out := map[string]cty.Value{}
	declared := map[string]bool{}
	for _, b := range blocks {
		name := b.Labels[0]
		declared[name] = true
		attrs, d := b.Body.JustAttributes()
		l.diags = append(l.diags, d...)
		for n, a := range attrs {
			if n != "default" && n != "description" {
				l.errorf(a.NameRange, "Unsupported argument", "A variable block takes \"default\" and \"description\", not %q.", n)
			}
		}
		var def cty.Value
		if a, ok := attrs["default"]; ok {
			v, d := a.Expr.Value(nil)
			l.diags = append(l.diags, d...)
			def = v
		}
		if raw, ok := given[name]; ok {
			v := cty.StringVal(raw)
			if def != cty.NilVal && def.Type() != cty.String && !def.IsNull() {
				cv, err := convert.Convert(v, def.Type())
				if err != nil {
					l.errorf(b.DefRange, "Invalid -var value", "-var %s=%q: the default of this variable is a %s, and the value given is not: %v.", name, raw, def.Type().FriendlyName(), err)
					continue
				}
				v = cv
			}
			out[name] = v
			continue
		}
		if def == cty.NilVal {
			l.errorf(b.DefRange, "Missing variable value", "Variable %q has no default; give it with -var %s=VALUE.", name, name)
			continue
		}
		out[name] = def
	}
	var unknown []string
	for name, raw := range given {
		if !declared[name] {
			unknown = append(unknown, name)
		}
		if isSecretText(raw) {
			l.diags = append(l.diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Secret written inline",
				Detail: fmt.Sprintf("-var %s holds private key material. Secrets never go in a spec or on a command line: unibus generates the cluster password and seals it, and each node keeps its own age identity.", name)})
		}
	}
	slices.Sort(unknown)
	for _, name := range unknown {
		l.diags = append(l.diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Undeclared variable",
			Detail: fmt.Sprintf("-var %s was given but the spec has no variable %q block; declare it or drop the -var.", name, name)})
	}
	return cty.ObjectVal(out)
}

// locals evaluates every locals block, each local once the locals it
// refers to are known, so the order in the file does not matter.
func (l *loader) locals(blocks hcl.Blocks, ctx *hcl.EvalContext) cty.Value {
	pending := map[string]*hcl.Attribute{}
	for _, b := range blocks {
		attrs, d := b.Body.JustAttributes()
		l.diags = append(l.diags, d...)
		for n, a := range attrs {
			if prev, dup := pending[n]; dup {
				l.errorf(a.NameRange, "Duplicate local value", "local.%s is already defined at %s.", n, prev.NameRange)
				continue
			}
			pending[n] = a
		}
	}
	done := map[string]cty.Value{}
	for len(pending) > 0 {
		progress := false
		for _, n := range sortedKeys(pending) {
			a := pending[n]
			ready := true
			for _, t := range a.Expr.Variables() {
				if t.RootName() != "local" || len(t) < 2 {
					continue
				}
				if ref, ok := t[1].(hcl.TraverseAttr); ok {
					if _, isPending := pending[ref.Name]; isPending {
						ready = false
					}
				}
			}
			if !ready {
				continue
			}
			c := ctx.NewChild()
			c.Variables = map[string]cty.Value{"local": cty.ObjectVal(done)}
			v, d := a.Expr.Value(c)
			l.diags = append(l.diags, d...)
			done[n] = v
			delete(pending, n)
			progress = true
		}
		if !progress {
			for _, n := range sortedKeys(pending) {
				l.errorf(pending[n].Expr.Range(), "Local values refer to each other", "local.%s depends on itself through other locals; break the cycle.", n)
				done[n] = cty.DynamicVal
			}
			break
		}
	}
	return cty.ObjectVal(done)
}

func sortedKeys[K ~string, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// scanSecrets reports every literal string in the spec that holds private
// key material: such a spec would leak it into git and into plans.
func (l *loader) scanSecrets(f *hcl.File) {
	body, ok := f.Body.(*hclsyntax.Body)
	if !ok {
		return
	}
	hclsyntax.VisitAll(body, func(n hclsyntax.Node) hcl.Diagnostics {
		if lit, ok := n.(*hclsyntax.TemplateExpr); ok {
			for _, p := range lit.Parts {
				if v, ok := p.(*hclsyntax.LiteralValueExpr); ok && v.Val.Type() == cty.String && isSecretText(v.Val.AsString()) {
					l.errorf(lit.SrcRange, "Secret written inline", "This string holds private key material. Secrets never go in a spec: unibus generates the cluster password and seals it to each node, and each node keeps its own age identity (give its age_recipient).")
				}
			}
		}
		return nil
	})
}

func isSecretText(s string) bool {
	return strings.Contains(strings.ToUpper(s), "AGE-SECRET-KEY-") || strings.Contains(s, "PRIVATE KEY-----")
}

func functions() map[string]function.Function {
	return map[string]function.Function{
		"abs": stdlib.AbsoluteFunc, "ceil": stdlib.CeilFunc, "floor": stdlib.FloorFunc,
		"min": stdlib.MinFunc, "max": stdlib.MaxFunc, "parseint": stdlib.ParseIntFunc,
		"format": stdlib.FormatFunc, "formatlist": stdlib.FormatListFunc, "join": stdlib.JoinFunc,
		"split": stdlib.SplitFunc, "upper": stdlib.UpperFunc, "lower": stdlib.LowerFunc,
		"replace": stdlib.ReplaceFunc, "trimspace": stdlib.TrimSpaceFunc, "trimprefix": stdlib.TrimPrefixFunc,
		"trimsuffix": stdlib.TrimSuffixFunc, "substr": stdlib.SubstrFunc, "strlen": stdlib.StrlenFunc,
		"concat": stdlib.ConcatFunc, "length": stdlib.LengthFunc, "element": stdlib.ElementFunc,
		"contains": stdlib.ContainsFunc, "distinct": stdlib.DistinctFunc, "flatten": stdlib.FlattenFunc,
		"keys": stdlib.KeysFunc, "values": stdlib.ValuesFunc, "lookup": stdlib.LookupFunc,
		"merge": stdlib.MergeFunc, "range": stdlib.RangeFunc, "reverse": stdlib.ReverseListFunc,
		"slice": stdlib.SliceFunc, "sort": stdlib.SortFunc, "zipmap": stdlib.ZipmapFunc,
		"coalesce": stdlib.CoalesceFunc, "compact": stdlib.CompactFunc, "index": stdlib.IndexFunc,
		"tostring": stdlib.MakeToFunc(cty.String), "tonumber": stdlib.MakeToFunc(cty.Number),
		"cidrhost": cidrHostFunc,
	}
}

// cidrHostFunc is Terraform's cidrhost(prefix, n): the n-th address of a
// network, so a spec can number its nodes.
var cidrHostFunc = function.New(&function.Spec{
	Params: []function.Parameter{{Name: "prefix", Type: cty.String}, {Name: "hostnum", Type: cty.Number}},
	Type:   function.StaticReturnType(cty.String),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		p, err := netip.ParsePrefix(args[0].AsString())
		if err != nil {
			return cty.UnknownVal(cty.String), fmt.Errorf("invalid CIDR prefix %q", args[0].AsString())
		}
		n, _ := args[1].AsBigFloat().Int64()
		if n < 0 || (p.Addr().Is4() && p.Bits() > 0 && n >= 1<<(32-p.Bits())) {
			return cty.UnknownVal(cty.String), fmt.Errorf("host number %d does not fit in %s", n, p)
		}
		ip := net.IP(p.Masked().Addr().AsSlice())
		for i := len(ip) - 1; i >= 0 && n > 0; i-- {
			sum := int64(ip[i]) + n
			ip[i] = byte(sum)
			n = sum >> 8
		}
		addr, _ := netip.AddrFromSlice(ip)
		return cty.StringVal(addr.Unmap().String()), nil
	},
})
