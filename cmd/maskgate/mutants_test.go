package main

import (
	"path/filepath"
	"testing"

	"github.com/maskgate/maskgate/internal/testkit"
)

// Each package's mutation list (PACKAGE/testdata/mutants.tsv, which scripts/mutants
// runs by hand) names edits of the package's files as they are (testkit.Mutants): a
// change that moves an edit's text fails here, in every test run, rather than in the
// next sweep. scripts/mutants finds the lists the same way, so a new package's list is
// held as soon as it exists.
func TestMutantsStillApply(t *testing.T) {
	var lists []string
	for _, pattern := range []string{"../../*/testdata/mutants.tsv", "../../*/*/testdata/mutants.tsv"} {
		found, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		lists = append(lists, found...)
	}
	if len(lists) < 8 {
		t.Fatalf("mutation lists found: %v; want those of sessions, upstream, middleware, api, handlers, cmd/maskgate, the simulator and internal/testkit", lists)
	}
	for _, list := range lists {
		if n := testkit.Mutants(t, list); n < 15 {
			t.Errorf("%s holds %d edits: it was cut short", list, n)
		}
	}
}
