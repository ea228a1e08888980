package sessions

import (
	"context"
	"errors"
	"strings"

	"github.com/redis/go-redis/v9"
)

// EvictionPolicy reads Redis's maxmemory-policy on the node that holds the store's keys.
// Managed services often refuse CONFIG; the error is then Redis's own reply.
func (s *Store) EvictionPolicy(ctx context.Context) (string, error) {
	node := redis.Cmdable(s.rdb)
	if c, ok := s.rdb.(*redis.ClusterClient); ok {
		master, err := c.MasterForKey(ctx, s.tag)
		if err != nil {
			return "", storeErr(err)
		}
		node = master
	}
	kv, err := node.ConfigGet(ctx, "maxmemory-policy").Result()
	if err != nil {
		return "", err
	}
	policy, ok := kv["maxmemory-policy"]
	if !ok {
		return "", errors.New("no maxmemory-policy in the answer to CONFIG GET")
	}
	return policy, nil
}

// Eviction is what Redis may drop of maskgate's keys when it reaches maxmemory.
type Eviction int

const (
	// EvictsNothing is noeviction's: a full Redis refuses writes, and a mask whose
	// write-ahead fails never reaches CXone.
	EvictsNothing Eviction = iota
	// EvictsExpiring is volatile-*'s: keys with a time to live, never a session or the
	// deadlines.
	EvictsExpiring
	// EvictsSessions is every other policy's: any key, which breaks the pairing
	// guarantee.
	EvictsSessions
)

// EvictionUnder is what Redis may drop under a maxmemory-policy.
func EvictionUnder(policy string) Eviction {
	switch {
	case policy == "noeviction":
		return EvictsNothing
	case strings.HasPrefix(policy, "volatile-"):
		return EvictsExpiring
	default:
		return EvictsSessions
	}
}

// String says what may be dropped, "" for nothing.
func (e Eviction) String() string {
	switch e {
	case EvictsNothing:
		return ""
	case EvictsExpiring:
		return "Idempotency-Key records (a retried request would run again), the answers kept for joined requests and the rate counters"
	default:
		return "any key, open sessions and their deadlines included: an agent could stay masked with no unmask ever sent"
	}
}
