package testkit

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Mutants reads a package's mutation list (testdata/mutants.tsv, which scripts/mutants
// runs by hand: a list takes minutes to two hours) and fails unless each line is one
// edit that applies to the package's files as they are: five tab-separated fields
// (the file from the package's directory, the text replaced, what replaces it, killed
// or survives, what the edit breaks), none empty, the text found exactly once in the
// file. A file changed under an edit fails here, in every test run, where the list is
// cheap to mend, rather than in the next sweep, whenever someone runs it. Lines
// starting with # are comments. It returns how many edits the list holds.
func Mutants(t testing.TB, list string) int {
	t.Helper()
	text, err := os.ReadFile(list)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(filepath.Dir(list))
	edits := 0
	var wrong []string
	for i, line := range strings.Split(strings.TrimSuffix(string(text), "\n"), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		if problem := mutantProblem(dir, line); problem != "" {
			wrong = append(wrong, fmt.Sprintf("line %d: %s", i+1, problem))
			continue
		}
		edits++
	}
	if len(wrong) > 0 {
		t.Fatalf("%s:\n%s", list, strings.Join(wrong, "\n"))
	}
	return edits
}

// mutantProblem says what is wrong with one edit of the list, or "".
func mutantProblem(dir, line string) string {
	fields := strings.Split(line, "\t")
	if len(fields) != 5 {
		return fmt.Sprintf("%d fields, not 5 (file, text, replacement, killed or survives, what it breaks)", len(fields))
	}
	file, text, replacement, expect := fields[0], fields[1], fields[2], fields[3]
	src, err := os.ReadFile(filepath.Join(dir, file))
	switch {
	case slices.Contains(fields, ""):
		// bash's read, in scripts/mutants, takes two tabs in a row for one.
		return "an empty field: the runner would read the fields after it shifted by one"
	case err != nil:
		return err.Error()
	case strings.Count(string(src), text) != 1:
		return fmt.Sprintf("%s holds %q %d times, not once: the file changed, mend the edit", file, text, strings.Count(string(src), text))
	case replacement == text:
		return "the replacement is the text itself"
	case expect != "killed" && expect != "survives":
		return fmt.Sprintf("%q is neither killed nor survives", expect)
	}
	return ""
}
