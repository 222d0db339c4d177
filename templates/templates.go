// Package templates holds the embedded text templates that unibus renders
// for a node: the membershipd unit and its drop-ins.
//
// It is for package provision, which executes them with a node's data and
// then parses the result into a units.File, so every rendered unit is
// validated and serialized the same way whatever the template's layout.
// Templates are data: an operator reading what unibus installs can start
// here.
//
// # Functions
//
// Templates get "esc" (a literal in a setting: "%" doubled) and "join".
package templates

import (
	"bytes"
	"embed"
	"fmt"
	"strings"
	"text/template"
)

//go:embed *.tmpl
var files embed.FS

var all = template.Must(template.New("").Option("missingkey=error").Funcs(template.FuncMap{
	"esc":  func(s string) string { return strings.ReplaceAll(s, "%", "%%") },
	"join": strings.Join,
}).ParseFS(files, "*.tmpl"))

// Names of the templates.
const (
	Service     = "membershipd.service.tmpl"
	Cluster     = "cluster.conf.tmpl"
	NATSMonitor = "nats-monitor.conf.tmpl"
	// Starter is the commented spec unibus init writes.
	Starter = "starter.hcl.tmpl"
)

// Execute renders the named template with data.
func Execute(name string, data any) ([]byte, error) {
	var buf bytes.Buffer
	if err := all.ExecuteTemplate(&buf, name, data); err != nil {
		return nil, fmt.Errorf("template %s: %w", name, err)
	}
	return buf.Bytes(), nil
}

// Source returns a template's text, for documentation and tests.
func Source(name string) ([]byte, error) { return files.ReadFile(name) }
