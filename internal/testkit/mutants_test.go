package testkit

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMutantsHoldsEachEditToTheFiles(t *testing.T) {
	dir := t.TempDir()
	for name, src := range map[string]string{
		"a.go":      "package a\n\nfunc f() bool { return x > 0 }\n",
		"lua/b.lua": "if wait > 0 then return wait end\nif wait > 0 then return 0 end\n",
	} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	list := filepath.Join(dir, "testdata", "mutants.tsv")
	if err := os.Mkdir(filepath.Dir(list), 0o755); err != nil {
		t.Fatal(err)
	}
	good := "# a comment\na.go\treturn x > 0\treturn x >= 0\tkilled\tzero passes\n" +
		"lua/b.lua\treturn wait end\treturn 0 end\tsurvives\tthe wait is lost\n"
	for _, c := range []struct {
		name, list, fails string // fails: what the failure names, "" for none
	}{
		{"every edit applies", good, ""},
		{"a text not in the file", good + "a.go\treturn y\treturn x\tkilled\tx\n", "line 4: a.go holds \"return y\" 0 times"},
		{"a text twice in the file", good + "lua/b.lua\tif wait > 0\tif true\tkilled\tx\n", "line 4: lua/b.lua holds \"if wait > 0\" 2 times"},
		{"a line of four fields", good + "a.go\treturn x\treturn y\tkilled\n", "line 4: 4 fields, not 5"},
		{"an empty replacement", good + "a.go\t > 0\t\tkilled\tx\n", "line 4: an empty field"},
		{"a replacement that changes nothing", good + "a.go\tx > 0\tx > 0\tkilled\tx\n", "line 4: the replacement is the text itself"},
		{"neither killed nor survives", good + "a.go\tx > 0\tx < 0\tdead\tx\n", `line 4: "dead" is neither`},
		{"a file that is not there", good + "c.go\tx\ty\tkilled\tx\n", "line 4: open "},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := os.WriteFile(list, []byte(c.list), 0o644); err != nil {
				t.Fatal(err)
			}
			edits := 0
			msg := fatalOf(t, func(tb testing.TB) { edits = Mutants(tb, list) })
			switch {
			case c.fails == "" && msg != "":
				t.Fatalf("Mutants failed with %q", msg)
			case c.fails == "" && edits != 2:
				t.Fatalf("Mutants counted %d edits; want 2", edits)
			case c.fails != "" && !strings.Contains(msg, c.fails):
				t.Fatalf("Mutants failed with %q; want it to name %q", msg, c.fails)
			}
		})
	}
}
