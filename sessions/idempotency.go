package sessions

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// Replay is what an Idempotency-Key keeps: while its first request runs, only the
// request's fingerprint; once it answered, the answer too.
type Replay struct {
	Fingerprint string `json:"fp"`
	Done        bool   `json:"done"`
	Status      int    `json:"status,omitempty"`
	ContentType string `json:"contentType,omitempty"`
	Body        []byte `json:"body,omitempty"`
}

// idemKey scopes an Idempotency-Key to its caller; hashed, so that neither's
// characters or length reach the key.
func (s *Store) idemKey(caller, key string) string {
	sum := sha256.Sum256([]byte(caller + "\x00" + key))
	return s.tag + ":idem:" + hex.EncodeToString(sum[:])
}

// ReserveIdempotency claims caller's key for a request with fingerprint fp for ttl. It
// returns nil when the key was free (the caller runs the request), else what the key
// holds.
func (s *Store) ReserveIdempotency(ctx context.Context, caller, key, fp string, ttl time.Duration) (*Replay, error) {
	mine, _ := json.Marshal(Replay{Fingerprint: fp})
	old, err := s.rdb.SetArgs(ctx, s.idemKey(caller, key), mine, redis.SetArgs{Mode: "NX", Get: true, TTL: ttl}).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, storeErr(err)
	}
	var r Replay
	if err := json.Unmarshal(old, &r); err != nil {
		return nil, storeErr(err)
	}
	return &r, nil
}

// CompleteIdempotency keeps the answer to caller's key for ttl.
func (s *Store) CompleteIdempotency(ctx context.Context, caller, key string, r Replay, ttl time.Duration) error {
	r.Done = true
	raw, _ := json.Marshal(r)
	return storeErr(s.rdb.Set(ctx, s.idemKey(caller, key), raw, ttl).Err())
}

// ReleaseIdempotency frees caller's key, so that a retry runs the request again.
func (s *Store) ReleaseIdempotency(ctx context.Context, caller, key string) error {
	return storeErr(s.rdb.Del(ctx, s.idemKey(caller, key)).Err())
}
