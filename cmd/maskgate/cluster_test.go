package main

import (
	"context"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/maskgate/maskgate/internal/testkit"
)

// TestRedisCluster runs the gateway on a three-master Redis Cluster: every key shares
// one hash tag, so each Lua transition (the sweeper's claim too) runs on one node.
func TestRedisCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster")
	}
	var addrs []string
	for range 3 {
		n := testkit.StartRedis(t, false, "cluster-enabled yes", "cluster-config-file nodes.conf", "cluster-node-timeout 2000",
			redisACL(t, "mgcluster", redisPassword, "+cluster|slots"))
		addrs = append(addrs, n.Addr())
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	// Every node, not just one: a node answers CLUSTERDOWN until it has seen all slots
	// served, and the first mask failed with it now and then when only one was asked.
	for _, addr := range addrs {
		node := redis.NewClient(&redis.Options{Addr: addr})
		defer node.Close()
		testkit.Eventually(t, 20*time.Second, "cluster_state:ok on "+addr, func() bool {
			info, err := node.ClusterInfo(context.Background()).Result()
			return err == nil && strings.Contains(info, "cluster_state:ok")
		})
	}

	// The node that holds maskgate's keys evicts any key when full; the others nothing.
	// The gateway must report the policy of that node.
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	defer cc.Close()
	holder, err := cc.MasterForKey(context.Background(), "{mgcluster}")
	if err != nil {
		t.Fatal(err)
	}
	if err := holder.ConfigSet(context.Background(), "maxmemory-policy", "allkeys-lru").Err(); err != nil {
		t.Fatal(err)
	}

	sim := testkit.NewSim(t)
	// As README's least-privilege user, with what a Cluster adds to it.
	s := onRedis(t, sim, "redis+cluster://maskgate:"+redisPassword+"@"+addrs[0]+"?addr="+addrs[1]+"&addr="+addrs[2], "mgcluster")
	if line := s.logLine(t, "Redis may evict maskgate's keys when full; set maxmemory-policy noeviction"); line["maxmemory_policy"] != "allkeys-lru" {
		t.Errorf("the policy reported is not that of the node holding the keys: %v", line)
	}
	do := func(method, path, body string) int { return s.call(t, method, path, body, "").status }
	for i := range 5 {
		id := "c-" + strconv.Itoa(i)
		sim.StartCall(id, false, true)
		ttl := `{"ttlSeconds":600}`
		if i == 0 {
			ttl = `{"ttlSeconds":1}`
		}
		if status := do("POST", "/v1/agents/"+id+"/mask", ttl); status != 200 {
			t.Fatalf("mask %s on the cluster = %d", id, status)
		}
	}
	if status := do("GET", "/v1/masks", ""); status != 200 {
		t.Errorf("list on the cluster = %d", status)
	}
	if status := do("POST", "/v1/agents/c-1/unmask", ""); status != 200 {
		t.Errorf("unmask on the cluster = %d", status)
	}
	testkit.Eventually(t, 10*time.Second, "the sweeper to expire c-0 on the cluster", func() bool {
		return do("GET", "/v1/agents/c-0/mask", "") == http.StatusNotFound
	})
	if n := sim.Count("unmask", "c-0", 200); n != 1 {
		t.Errorf("expiry unmasks of c-0 = %d; want 1", n)
	}
}
