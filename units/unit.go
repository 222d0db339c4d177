package units

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"

	"github.com/coreos/go-systemd/v22/unit"
)

// File is a systemd unit file or drop-in.
type File struct {
	// Header lines are written as "# line" before the first section: who
	// rendered the file and from what.
	Header   []string
	Sections []Section
}

// Section is one [Name] block; options keep their order, and an option may
// repeat (a list setting, or an empty assignment that resets one).
type Section struct {
	Name    string
	Options []Option
}

// Option is one Name=Value line.
type Option struct {
	Name, Value string
}

// sectionOrder is the order systemd's own units use; a file must follow it.
var sectionOrder = []string{"Unit", "Service", "Install"}

var (
	optionName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9]*$`)
	// ErrInvalid is wrapped by every validation error of [File.Validate].
	ErrInvalid = errors.New("invalid unit file")
)

// Section returns the named section, or nil.
func (f *File) Section(name string) *Section {
	for i := range f.Sections {
		if f.Sections[i].Name == name {
			return &f.Sections[i]
		}
	}
	return nil
}

// Values returns every value of name in section, in order.
func (f File) Values(section, name string) []string {
	var out []string
	if s := f.Section(section); s != nil {
		for _, o := range s.Options {
			if o.Name == name {
				out = append(out, o.Value)
			}
		}
	}
	return out
}

// Validate says what would make the file ambiguous or wrong for systemd.
func (f File) Validate() error {
	if len(f.Sections) == 0 {
		return fmt.Errorf("%w: no section", ErrInvalid)
	}
	for _, h := range f.Header {
		if hasControl(h) {
			return fmt.Errorf("%w: header line %q has a control character", ErrInvalid, h)
		}
	}
	last := -1
	for _, s := range f.Sections {
		pos := slices.Index(sectionOrder, s.Name)
		if pos < 0 {
			return fmt.Errorf("%w: unknown section [%s] (want one of %s)", ErrInvalid, s.Name, strings.Join(sectionOrder, ", "))
		}
		if pos <= last {
			return fmt.Errorf("%w: section [%s] out of order or repeated (order: %s)", ErrInvalid, s.Name, strings.Join(sectionOrder, ", "))
		}
		last = pos
		for _, o := range s.Options {
			if !optionName.MatchString(o.Name) {
				return fmt.Errorf("%w: [%s] option name %q", ErrInvalid, s.Name, o.Name)
			}
			if err := validateValue(o.Value); err != nil {
				return fmt.Errorf("%w: [%s] %s=: %v", ErrInvalid, s.Name, o.Name, err)
			}
		}
	}
	return nil
}

func validateValue(v string) error {
	if hasControl(v) {
		return fmt.Errorf("value %q has a newline or control character", v)
	}
	if strings.HasSuffix(v, `\`) {
		return fmt.Errorf("value %q ends in a backslash, which would continue the line", v)
	}
	if v != strings.TrimSpace(v) {
		return fmt.Errorf("value %q has leading or trailing white space, which systemd drops", v)
	}
	return nil
}

func hasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

// Bytes validates the file and renders it: header, then sections in order
// with a blank line between them, options as given. The same File always
// gives the same bytes.
func (f File) Bytes() ([]byte, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	for _, h := range f.Header {
		buf.WriteString(strings.TrimRight("# "+h, " ") + "\n")
	}
	if len(f.Header) > 0 {
		buf.WriteString("\n")
	}
	secs := make([]*unit.UnitSection, 0, len(f.Sections))
	for _, s := range f.Sections {
		us := &unit.UnitSection{Section: s.Name}
		for _, o := range s.Options {
			us.Entries = append(us.Entries, &unit.UnitEntry{Name: o.Name, Value: o.Value})
		}
		secs = append(secs, us)
	}
	if _, err := io.Copy(&buf, unit.SerializeSections(secs)); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Parse reads a unit file with go-systemd's deserializer; leading comment
// lines become the header.
func Parse(data []byte) (File, error) {
	var f File
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "#") {
			break
		}
		f.Header = append(f.Header, strings.TrimPrefix(strings.TrimPrefix(line, "#"), " "))
	}
	secs, err := unit.DeserializeSections(bytes.NewReader(data))
	if err != nil {
		return File{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	for _, us := range secs {
		s := Section{Name: us.Section}
		for _, e := range us.Entries {
			s.Options = append(s.Options, Option{Name: e.Name, Value: e.Value})
		}
		f.Sections = append(f.Sections, s)
	}
	return f, nil
}

// Escape makes s a literal in a unit setting: systemd would otherwise
// expand "%" specifiers in it.
func Escape(s string) string { return strings.ReplaceAll(s, "%", "%%") }

// ExecArg makes s one literal argument of an Exec*= command line: "%"
// and "$" lose their meaning, and it is quoted when it holds white space,
// quotes or backslashes, or is empty.
func ExecArg(s string) string {
	s = strings.NewReplacer("%", "%%", "$", "$$").Replace(s)
	if s != "" && !strings.ContainsAny(s, " \t\"'\\;") {
		return s
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
