package sessions

import (
	"os"
	"strings"
	"testing"
)

// The mutation sweep's list (testdata/lua-mutants.tsv, which scripts/mutants runs by
// hand: it takes about 40 minutes) names edits of the scripts as they are now. A script
// changed under an edit fails here, in every test run, where the list is cheap to
// mend, rather than in the next sweep, whenever someone runs it.
func TestLuaMutantsStillApply(t *testing.T) {
	list, err := os.ReadFile("testdata/lua-mutants.tsv")
	if err != nil {
		t.Fatal(err)
	}
	edits := 0
	for i, line := range strings.Split(strings.TrimSuffix(string(list), "\n"), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Split(line, "\t")
		if len(fields) != 5 {
			t.Errorf("line %d has %d fields, not 5 (script, text, replacement, killed or survives, what it breaks)", i+1, len(fields))
			continue
		}
		script, text, replacement, expect := fields[0], fields[1], fields[2], fields[3]
		src, err := os.ReadFile("lua/" + script)
		switch {
		case err != nil:
			t.Errorf("line %d: %v", i+1, err)
		case strings.Count(string(src), text) != 1:
			t.Errorf("line %d: %s holds %q %d times, not once: the script changed, mend the edit", i+1, script, text, strings.Count(string(src), text))
		case replacement == text:
			t.Errorf("line %d: the replacement is the text itself", i+1)
		case expect != "killed" && expect != "survives":
			t.Errorf("line %d: %q is neither killed nor survives", i+1, expect)
		}
		edits++
	}
	if edits < 30 {
		t.Fatalf("the list holds %d edits: it was cut short", edits)
	}
}
