package sessions

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestREADMEListsEveryAuditEvent: README's "Audit and logs" names every event an audit
// line can carry (auditEvents, which every audit line takes its event from), in order,
// and no other.
func TestREADMEListsEveryAuditEvent(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	// The sentence may break anywhere: read README's words with one space between them.
	text := strings.Join(strings.Fields(string(readme)), " ")
	_, after, ok := strings.Cut(text, "Every session decision writes one more line with `\"audit\":true`, `event`")
	list, _, closed := strings.Cut(after, ")")
	if !ok || !closed {
		t.Fatal("README has no list of audit events where it says what an audit line holds")
	}
	var listed []string
	for _, m := range regexp.MustCompile("`([a-z_-]+)`").FindAllStringSubmatch(list, -1) {
		listed = append(listed, m[1])
	}
	var events []string
	for _, e := range auditEvents {
		events = append(events, e.name)
	}
	if !slices.Equal(listed, events) {
		t.Errorf("README lists the audit events\n%v\nbut the code has\n%v", listed, events)
	}
}
