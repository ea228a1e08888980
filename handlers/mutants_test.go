package handlers_test

import (
	"testing"

	"github.com/maskgate/maskgate/internal/testkit"
)

// The list of scripts/mutants names edits of the code as it is.
func TestMutantsStillApply(t *testing.T) {
	if n := testkit.Mutants(t, "testdata/mutants.tsv"); n[".go"] < 15 {
		t.Fatalf("the list holds %v edits by kind of file: it was cut short", n)
	}
}
