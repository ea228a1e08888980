package sessions

import "testing"

// A joined request's answer kept by a replica of the version before supersededId has
// one field less: during a rolling upgrade it must still decode.
func TestSessionRecordOfThePreviousVersionDecodes(t *testing.T) {
	f := []string{"s1", "a", "masked", "1795700000000", "1795700900000", "crm", "", "", "", ""}
	if len(f) != sessionFieldCount-1 {
		t.Fatalf("the record has %d fields; the previous version's had %d", len(f), sessionFieldCount-1)
	}
	s, err := decodeSession(f)
	if err != nil || s.ID != "s1" || s.State != StateMasked || s.SupersededID != "" {
		t.Errorf("decodeSession of the previous version's record = %+v, %v", s, err)
	}
	if _, err := decodeSession(f[:len(f)-1]); err == nil {
		t.Error("a record missing one of the previous version's fields decoded")
	}
}
