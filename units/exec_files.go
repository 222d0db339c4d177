package units

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/coreos/go-systemd/v22/unit"
)

// UnitFiles finds a unit's file and its drop-ins under unitDir the way
// systemd does: drop-ins are the *.conf files of "<type>.d/" (every
// service), of each dash prefix ("membershipd-.service.d/" for
// "membershipd-cluster.service"), of the template ("foo@.service.d/") and
// of "<unit>.d/", the more specific folder winning for the same file name;
// they apply in lexical order of their file names after the base file. A
// unit or drop-in linked to /dev/null is masked.
func UnitFiles(unitDir, name string) (base string, dropIns []string, err error) {
	dot := strings.LastIndexByte(name, '.')
	if dot <= 0 {
		return "", nil, fmt.Errorf("unit name %q has no type suffix such as .service", name)
	}
	stem, suffix := name[:dot], name[dot:]
	base = filepath.Join(unitDir, name)
	template := ""
	if at := strings.IndexByte(stem, '@'); at >= 0 {
		template = stem[:at+1] + suffix
	}
	if _, err := os.Stat(base); errors.Is(err, fs.ErrNotExist) && template != "" {
		base = filepath.Join(unitDir, template)
	}
	if masked(base) {
		return "", nil, fmt.Errorf("unit %s is masked (linked to /dev/null)", name)
	}
	if _, err := os.Stat(base); err != nil {
		return "", nil, fmt.Errorf("unit %s: %w", name, err)
	}

	// folders from least to most specific
	dirs := []string{suffix[1:] + ".d"}
	for i := 0; i < len(stem); i++ {
		if stem[i] == '-' && i > 0 {
			dirs = append(dirs, stem[:i+1]+suffix+".d")
		}
	}
	if template != "" {
		dirs = append(dirs, template+".d")
	}
	dirs = append(dirs, name+".d")
	byName := map[string]string{}
	for _, d := range dirs {
		matches, _ := filepath.Glob(filepath.Join(unitDir, d, "*.conf"))
		for _, m := range matches {
			byName[filepath.Base(m)] = m
		}
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if !masked(byName[n]) {
			dropIns = append(dropIns, byName[n])
		}
	}
	return base, dropIns, nil
}

func masked(p string) bool {
	t, err := filepath.EvalSymlinks(p)
	return err == nil && t == os.DevNull
}

// entry is one Name=Value assignment and where it was made.
type entry struct {
	file          string
	line          int
	section, name string
	value         string
}

func (e entry) where() string {
	if e.line > 0 {
		return fmt.Sprintf("%s:%d", e.file, e.line)
	}
	return e.file
}

// readEntries parses a unit file with go-systemd's deserializer (comments,
// continuation lines, sections) and numbers its assignments by a scan of
// the same bytes, so an error can name file:line.
func readEntries(path string) ([]entry, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	secs, err := unit.DeserializeSections(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	lines := assignmentLines(data)
	var out []entry
	for _, s := range secs {
		for _, e := range s.Entries {
			out = append(out, entry{file: path, section: s.Section, name: e.Name, value: e.Value})
		}
	}
	if len(lines) == len(out) {
		for i := range out {
			out[i].line = lines[i]
		}
	}
	return out, nil
}

// assignmentLines is the line number of each assignment, in order.
func assignmentLines(data []byte) []int {
	var out []int
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	n, cont := 0, false
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if cont {
			cont = strings.HasSuffix(line, `\`)
			continue
		}
		if line == "" || line[0] == '#' || line[0] == ';' || line[0] == '[' {
			continue
		}
		out = append(out, n)
		cont = strings.HasSuffix(line, `\`)
	}
	return out
}
