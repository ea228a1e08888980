package sessions

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// Rate is a caller's request rate limit: its name and how many requests per second it
// may make. Masks and unmasks count in their first script; the zero Rate counts nothing.
type Rate struct {
	Caller    string
	PerSecond int
}

func (s *Store) rateKey(caller string) string {
	sum := sha256.Sum256([]byte(caller))
	return s.tag + ":rate:" + hex.EncodeToString(sum[:12])
}

// Allow counts one request of caller against limit requests per window, shared by all
// replicas through Redis; when the caller is over its limit it answers how long to wait.
func (s *Store) Allow(ctx context.Context, caller string, limit int, window time.Duration) (time.Duration, error) {
	ms, err := s.scripts.run(ctx, rateScript, []string{s.rateKey(caller)}, limit, window.Milliseconds()).Int64()
	if err != nil {
		return 0, storeErr(err)
	}
	return time.Duration(ms) * time.Millisecond, nil
}
