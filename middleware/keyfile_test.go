package middleware

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

// TestKeyFileLogsEachChangeOnce drives the public key file's reloads one tick at a
// time (TestPublicKeyFileIsReadAgainWhenItChanges drives them by the clock): a file
// read again unchanged says nothing, a broken one is logged once however many ticks
// find it so, and once the file is good again, the same breakage is logged again.
func TestKeyFileLogsEachChangeOnce(t *testing.T) {
	keyPEM := func() []byte {
		pub, _, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	}
	first, second, broken := keyPEM(), keyPEM(), []byte("-----BEGIN PUBLIC KEY-----\nhalf written")
	path := filepath.Join(t.TempDir(), "keys.pem")
	var logs bytes.Buffer
	f := &keyFile{path: path, seen: first, log: zerolog.New(&logs)}
	const reloaded, notLoaded = "JWT public key file reloaded", "changed but does not load"
	for _, step := range []struct {
		file   []byte
		ticks  int
		logged string // the one line the ticks write, or ""
	}{
		{first, 3, ""},
		{second, 3, reloaded},
		{broken, 3, notLoaded},
		{second, 2, ""}, // fixed, back to the keys in use: nothing to reload
		{broken, 2, notLoaded},
		{first, 1, reloaded},
		{broken, 2, notLoaded},
	} {
		if err := os.WriteFile(path, step.file, 0o600); err != nil {
			t.Fatal(err)
		}
		logs.Reset()
		for range step.ticks {
			f.reload()
		}
		lines := strings.Count(logs.String(), "\n")
		if step.logged == "" && lines != 0 || step.logged != "" && (lines != 1 || !strings.Contains(logs.String(), step.logged)) {
			t.Errorf("%d ticks over %.20q wrote %q; want %q once", step.ticks, step.file, logs.String(), step.logged)
		}
	}
}
