package main

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"gopkg.in/yaml.v3"
)

// alertRule is one rule of deploy/prometheus/alerts.yml.
type alertRule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// alertRules reads the example alert rules, by name.
func alertRules(t *testing.T) map[string]alertRule {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repo, "deploy/prometheus/alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Groups []struct {
			Rules []alertRule `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(raw, &file); err != nil {
		t.Fatalf("alerts.yml: %v", err)
	}
	rules := map[string]alertRule{}
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			rules[r.Alert] = r
		}
	}
	return rules
}

// TestAlertRulesUseExportedMetrics parses the example alert rules, each expression with
// Prometheus's own PromQL parser, and checks every maskgate metric they use against a
// live gateway's /metrics.
func TestAlertRulesUseExportedMetrics(t *testing.T) {
	rules := alertRules(t)
	exposed := exposition(t)
	promql := parser.NewParser(parser.Options{})
	for _, r := range rules {
		if r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
			t.Errorf("%s lacks a severity or a summary", r.Alert)
		}
		if _, err := model.ParseDuration(r.For); r.For != "" && err != nil {
			t.Errorf("%s: for: %v", r.Alert, err)
		}
		expr, err := promql.ParseExpr(r.Expr)
		if err != nil {
			t.Errorf("%s: %v", r.Alert, err)
			continue
		}
		parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
			v, ok := n.(*parser.VectorSelector)
			if !ok || !strings.HasPrefix(v.Name, "maskgate_") {
				return nil
			}
			if !strings.Contains(exposed, "# TYPE "+strings.TrimSuffix(v.Name, "_bucket")+" ") {
				t.Errorf("%s uses %s, which the gateway does not export", r.Alert, v.Name)
			}
			// A label the metric does not have would make the alert match nothing, ever.
			for _, m := range v.LabelMatchers {
				if m.Name != "__name__" && !hasLabel(exposed, v.Name, m.Name) {
					t.Errorf("%s selects %s by label %s, which it does not have", r.Alert, v.Name, m.Name)
				}
			}
			return nil
		})
	}
}

// hasLabel reports whether a series of metric in the exposition carries label.
func hasLabel(exposition, metric, label string) bool {
	for line := range strings.Lines(exposition) {
		if rest, ok := strings.CutPrefix(line, metric+"{"); ok && (strings.HasPrefix(rest, label+`="`) || strings.Contains(rest, ","+label+`="`)) {
			return true
		}
	}
	return false
}

// TestAlertsFireOnTheTroubleTheyAreFor evaluates each example alert with Prometheus's own
// query engine, over series that show the trouble the alert is for and series that do
// not, as `promtool test rules` would. Every alert has a case of each kind, so that one
// which could never fire, or would fire all the time, fails here.
func TestAlertsFireOnTheTroubleTheyAreFor(t *testing.T) {
	const mask = `route="/v1/agents/{userId}/mask"`
	lag := func(under2, under5, under10 float64) []testSeries {
		return []testSeries{
			{`maskgate_sweeper_lag_seconds_bucket{le="2"}`, rising(0, under2, 30)},
			{`maskgate_sweeper_lag_seconds_bucket{le="5"}`, rising(0, under2+under5, 30)},
			{`maskgate_sweeper_lag_seconds_bucket{le="10"}`, rising(0, under2+under5+under10, 30)},
			{`maskgate_sweeper_lag_seconds_bucket{le="+Inf"}`, rising(0, under2+under5+under10, 30)},
		}
	}
	// perMinute counts one event a minute from minute from until minute to.
	perMinute := func(from, to int) []float64 {
		v := make([]float64, 30)
		for m := range v {
			v[m] = float64(min(max(m-from+1, 0), to-from))
		}
		return v
	}
	// failing is the histogram of the unmasks' failures by how long each had been
	// failing: those within 10 minutes (under 5), and those beyond (under 30).
	failing := func(within10m, beyond []float64) []testSeries {
		total := make([]float64, len(beyond))
		for i := range total {
			total[i] = within10m[i] + beyond[i]
		}
		return []testSeries{
			{`maskgate_unmask_failing_for_seconds_bucket{le="300"}`, within10m},
			{`maskgate_unmask_failing_for_seconds_bucket{le="600"}`, within10m},
			{`maskgate_unmask_failing_for_seconds_bucket{le="1800"}`, total},
			{`maskgate_unmask_failing_for_seconds_bucket{le="+Inf"}`, total},
		}
	}
	cases := []struct {
		alert, when string
		series      []testSeries
		at          time.Duration
		fires       bool
	}{
		{"MaskgateSweeperLagging", "expiries are sent 5-10 s late", lag(0, 1, 20), 20 * time.Minute, true},
		{"MaskgateSweeperLagging", "expiries are sent within 2 s", lag(20, 0, 0), 20 * time.Minute, false},

		{"MaskgateSweepersNotWorking", "the due sessions have waited since minute 5", []testSeries{
			{`maskgate_sweeper_overdue_seconds{instance="a"}`, slices.Concat(rising(0, 0, 5), rising(0, 60, 25))},
			{`maskgate_sweeper_overdue_seconds{instance="b"}`, rising(math.NaN(), 0, 30)}, // its Redis is out of reach
		}, 20 * time.Minute, true},
		{"MaskgateSweepersNotWorking", "the sweepers keep up", []testSeries{
			{`maskgate_sweeper_overdue_seconds{instance="a"}`, slices.Concat(rising(0, 0, 10), rising(0.8, 0, 20))},
		}, 20 * time.Minute, false},
		{"MaskgateSweepersNotWorking", "a burst was worked off within two minutes", []testSeries{
			{`maskgate_sweeper_overdue_seconds{instance="a"}`, slices.Concat(rising(0, 0, 10), rising(50, 40, 3), rising(0, 0, 17))},
		}, 20 * time.Minute, false},

		{"MaskgateLogLinesLost", "one replica's output refused lines 3 minutes ago", []testSeries{
			{`maskgate_log_lines_lost_total{instance="a"}`, rising(0, 0, 30)},
			{`maskgate_log_lines_lost_total{instance="b"}`, slices.Concat(rising(0, 0, 17), rising(2, 0, 13))},
		}, 20 * time.Minute, true},
		{"MaskgateLogLinesLost", "none lost", []testSeries{
			{`maskgate_log_lines_lost_total{instance="a"}`, rising(0, 0, 30)},
		}, 20 * time.Minute, false},

		{"MaskgateUnmaskFailingLong", "an unmask has failed at each retry since minute 5",
			failing(perMinute(5, 16), perMinute(16, 30)), 20 * time.Minute, true},
		{"MaskgateUnmaskFailingLong", "one failed from minute 0 to 17, then went through",
			failing(perMinute(0, 11), perMinute(11, 18)), 25 * time.Minute, false},
		{"MaskgateUnmaskFailingLong", "unmasks fail every minute, none for 10 minutes",
			failing(perMinute(0, 30), perMinute(0, 0)), 20 * time.Minute, false},

		{"MaskgateUnmaskGivenUp", "a given-up session is still open, hours later", []testSeries{
			{`maskgate_unmasks_given_up{instance="a"}`, slices.Concat(rising(0, 0, 5), rising(1, 0, 300))},
			{`maskgate_unmasks_given_up{instance="b"}`, slices.Concat(rising(0, 0, 5), rising(1, 0, 300))},
		}, 4 * time.Hour, true},
		{"MaskgateUnmaskGivenUp", "an operator unmasked it", []testSeries{
			{`maskgate_unmasks_given_up{instance="a"}`, slices.Concat(rising(0, 0, 5), rising(1, 0, 10), rising(0, 0, 20))},
		}, 20 * time.Minute, false},
		{"MaskgateUnmaskGivenUp", "Redis cannot say (NaN)", []testSeries{
			{`maskgate_unmasks_given_up{instance="a"}`, rising(math.NaN(), 0, 30)},
		}, 20 * time.Minute, false},

		{"MaskgateCXoneErrorRate", "a fifth of CXone's answers are 503, for 20 minutes", []testSeries{
			{`maskgate_cxone_requests_total{op="mask",status="200"}`, rising(0, 80, 30)},
			{`maskgate_cxone_requests_total{op="mask",status="503"}`, rising(0, 20, 30)},
		}, 20 * time.Minute, true},
		{"MaskgateCXoneErrorRate", "a fifth of them are, for the last 3 minutes", []testSeries{
			{`maskgate_cxone_requests_total{op="mask",status="200"}`, rising(0, 80, 30)},
			{`maskgate_cxone_requests_total{op="mask",status="503"}`, slices.Concat(rising(0, 0, 20), rising(20, 20, 10))},
		}, 23 * time.Minute, false},
		{"MaskgateCXoneErrorRate", "a fifth of the calls bring no answer, for 20 minutes", []testSeries{
			{`maskgate_cxone_requests_total{op="mask",status="200"}`, rising(0, 80, 30)},
			{`maskgate_cxone_requests_total{op="mask",status="error"}`, rising(0, 20, 30)},
		}, 20 * time.Minute, true},
		{"MaskgateCXoneErrorRate", "one in twenty are 503", []testSeries{
			{`maskgate_cxone_requests_total{op="mask",status="200"}`, rising(0, 95, 30)},
			{`maskgate_cxone_requests_total{op="mask",status="503"}`, rising(0, 5, 30)},
		}, 20 * time.Minute, false},

		{"MaskgateCXoneFindsNoCalls", "every mask is answered 404, for 20 minutes", []testSeries{
			{`maskgate_cxone_requests_total{op="mask",status="404"}`, rising(0, 30, 30)},
			{`maskgate_cxone_requests_total{op="unmask",status="404"}`, rising(0, 10, 30)},
		}, 20 * time.Minute, true},
		{"MaskgateCXoneFindsNoCalls", "a tenth of them are (agents masked between calls)", []testSeries{
			{`maskgate_cxone_requests_total{op="mask",status="200"}`, rising(0, 27, 30)},
			{`maskgate_cxone_requests_total{op="mask",status="404"}`, rising(0, 3, 30)},
		}, 20 * time.Minute, false},
		{"MaskgateCXoneFindsNoCalls", "the few masks of a quiet night are 404", []testSeries{
			{`maskgate_cxone_requests_total{op="mask",status="404"}`, rising(0, 0.5, 30)},
		}, 20 * time.Minute, false},
		{"MaskgateCXoneFindsNoCalls", "every mask is since minute 20, not yet for 10 minutes", []testSeries{
			{`maskgate_cxone_requests_total{op="mask",status="200"}`, slices.Concat(rising(0, 30, 20), rising(570, 0, 20))},
			{`maskgate_cxone_requests_total{op="mask",status="404"}`, slices.Concat(rising(0, 0, 20), rising(30, 30, 20))},
		}, 35 * time.Minute, false},
		{"MaskgateCXoneFindsNoCalls", "every mask is since minute 20, at minute 45", []testSeries{
			{`maskgate_cxone_requests_total{op="mask",status="200"}`, slices.Concat(rising(0, 30, 20), rising(570, 0, 30))},
			{`maskgate_cxone_requests_total{op="mask",status="404"}`, slices.Concat(rising(0, 0, 20), rising(30, 30, 30))},
		}, 45 * time.Minute, true},

		{"MaskgateCXoneTokenFailures", "CXone refused a token request", []testSeries{
			{`maskgate_cxone_token_requests_total{status="200"}`, rising(0, 1, 30)},
			{`maskgate_cxone_token_requests_total{status="401"}`, slices.Concat(rising(0, 0, 5), rising(1, 0, 10))},
		}, 10 * time.Minute, true},
		{"MaskgateCXoneTokenFailures", "every token request succeeded", []testSeries{
			{`maskgate_cxone_token_requests_total{status="200"}`, rising(0, 1, 30)},
		}, 20 * time.Minute, false},

		{"MaskgateCallersRefused", "a third of the masks are refused with 401, for 20 minutes", []testSeries{
			{`maskgate_http_requests_total{` + mask + `,status="200"}`, rising(0, 60, 30)},
			{`maskgate_http_requests_total{` + mask + `,status="401"}`, rising(0, 30, 30)},
		}, 20 * time.Minute, true},
		{"MaskgateCallersRefused", "a third are, for the last 8 minutes", []testSeries{
			{`maskgate_http_requests_total{` + mask + `,status="200"}`, rising(0, 60, 30)},
			{`maskgate_http_requests_total{` + mask + `,status="401"}`, slices.Concat(rising(0, 0, 12), rising(30, 30, 18))},
		}, 20 * time.Minute, false},
		{"MaskgateCallersRefused", "one in ten are refused with 403", []testSeries{
			{`maskgate_http_requests_total{` + mask + `,status="200"}`, rising(0, 90, 30)},
			{`maskgate_http_requests_total{` + mask + `,status="403"}`, rising(0, 10, 30)},
		}, 20 * time.Minute, false},
		{"MaskgateCallersRefused", "a third are refused with 400, for 20 minutes (an integration the gateway no longer takes)", []testSeries{
			{`maskgate_http_requests_total{` + mask + `,status="200"}`, rising(0, 60, 30)},
			{`maskgate_http_requests_total{` + mask + `,status="400"}`, rising(0, 30, 30)},
		}, 20 * time.Minute, true},
		{"MaskgateCallersRefused", "a third are 415, compressed bodies, for 20 minutes", []testSeries{
			{`maskgate_http_requests_total{` + mask + `,status="200"}`, rising(0, 60, 30)},
			{`maskgate_http_requests_total{` + mask + `,status="415"}`, rising(0, 30, 30)},
		}, 20 * time.Minute, true},
		{"MaskgateCallersRefused", "a third are answered 404 or 409 (no active call, not masked)", []testSeries{
			{`maskgate_http_requests_total{` + mask + `,status="200"}`, rising(0, 60, 30)},
			{`maskgate_http_requests_total{` + mask + `,status="404"}`, rising(0, 15, 30)},
			{`maskgate_http_requests_total{` + mask + `,status="409"}`, rising(0, 15, 30)},
		}, 20 * time.Minute, false},
		{"MaskgateCallersRefused", "only requests outside /v1 are refused", []testSeries{
			{`maskgate_http_requests_total{` + mask + `,status="200"}`, rising(0, 60, 30)},
			{`maskgate_http_requests_total{route="/metrics",status="401"}`, rising(0, 60, 30)},
		}, 20 * time.Minute, false},

		{"MaskgateInternalErrors", "a mask was answered 500 five minutes ago", []testSeries{
			{`maskgate_http_requests_total{` + mask + `,status="200"}`, rising(0, 60, 30)},
			{`maskgate_http_requests_total{` + mask + `,status="500"}`, slices.Concat(rising(0, 0, 15), rising(1, 0, 15))},
		}, 20 * time.Minute, true},
		{"MaskgateInternalErrors", "the last 500 was 20 minutes ago", []testSeries{
			{`maskgate_http_requests_total{` + mask + `,status="500"}`, slices.Concat(rising(0, 0, 5), rising(1, 0, 35))},
		}, 35 * time.Minute, false},
		{"MaskgateInternalErrors", "callers hung up (499) and CXone failed (503)", []testSeries{
			{`maskgate_http_requests_total{` + mask + `,status="499"}`, rising(0, 5, 30)},
			{`maskgate_http_requests_total{` + mask + `,status="503"}`, rising(0, 5, 30)},
		}, 20 * time.Minute, false},

		{"MaskgateRedisUnavailable", "one replica of two lost Redis 3 minutes ago", []testSeries{
			{`maskgate_redis_up{instance="a"}`, rising(1, 0, 30)},
			{`maskgate_redis_up{instance="b"}`, slices.Concat(rising(1, 0, 7), rising(0, 0, 23))},
		}, 10 * time.Minute, true},
		{"MaskgateRedisUnavailable", "both reach it", []testSeries{
			{`maskgate_redis_up{instance="a"}`, rising(1, 0, 30)},
			{`maskgate_redis_up{instance="b"}`, rising(1, 0, 30)},
		}, 20 * time.Minute, false},

		{"MaskgateRedisMayEvict", "Redis may evict keys with an expiry (volatile-lru)", []testSeries{
			{"maskgate_redis_eviction", rising(1, 0, 30)},
		}, 20 * time.Minute, true},
		{"MaskgateRedisMayEvict", "Redis evicts nothing (noeviction)", []testSeries{
			{"maskgate_redis_eviction", rising(0, 0, 30)},
		}, 20 * time.Minute, false},

		{"MaskgateRedisMemoryHigh", "Redis is at 90% of its maxmemory", []testSeries{
			{"redis_memory_used_bytes", rising(900, 0, 30)},
			{"redis_memory_max_bytes", rising(1000, 0, 30)},
		}, 20 * time.Minute, true},
		{"MaskgateRedisMemoryHigh", "Redis is at half of it", []testSeries{
			{"redis_memory_used_bytes", rising(500, 0, 30)},
			{"redis_memory_max_bytes", rising(1000, 0, 30)},
		}, 20 * time.Minute, false},
		{"MaskgateRedisMemoryHigh", "Redis has no maxmemory", []testSeries{
			{"redis_memory_used_bytes", rising(900, 0, 30)},
			{"redis_memory_max_bytes", rising(0, 0, 30)},
		}, 20 * time.Minute, false},

		{"MaskgateTLSCertificateExpiresSoon", "one replica's certificate expires in 10 days", []testSeries{
			{`maskgate_tls_certificate_expiration_timestamp_seconds{instance="a"}`, rising(100*86400, 0, 120)},
			{`maskgate_tls_certificate_expiration_timestamp_seconds{instance="b"}`, rising(10*86400, 0, 120)},
		}, 2 * time.Hour, true},
		{"MaskgateTLSCertificateExpiresSoon", "every certificate has 90 days left", []testSeries{
			{`maskgate_tls_certificate_expiration_timestamp_seconds{instance="a"}`, rising(90*86400, 0, 120)},
		}, 2 * time.Hour, false},
	}
	rules := alertRules(t)
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 1e6, Timeout: time.Minute})
	fires, silent := map[string]bool{}, map[string]bool{}
	for _, c := range cases {
		r, ok := rules[c.alert]
		if !ok {
			t.Errorf("no alert %s in alerts.yml", c.alert)
			continue
		}
		if c.fires {
			fires[c.alert] = true
		} else {
			silent[c.alert] = true
		}
		t.Run(c.alert+"/"+c.when, func(t *testing.T) {
			if got := firing(t, engine, store(t, c.series), r, c.at); got != c.fires {
				t.Errorf("fires at %v: %v, want %v", c.at, got, c.fires)
			}
		})
	}
	for name := range rules {
		if !fires[name] || !silent[name] {
			t.Errorf("%s needs a case where it fires and one where it does not", name)
		}
	}
}

// TestREADMEListsEveryAlert: the README's table of alerts names every rule of
// alerts.yml with its severity, and no other.
func TestREADMEListsEveryAlert(t *testing.T) {
	// Each row as "name` | severity".
	listed := namesInREADME(t, "| alert | severity | fires when |", "\n\n", "(?m)^\\| `(Maskgate[A-Za-z]+` \\| [a-z]+)")
	rules := alertRules(t)
	for name, r := range rules {
		if !listed[name+"` | "+r.Labels["severity"]] {
			t.Errorf("the README's table of alerts lacks %s with severity %s", name, r.Labels["severity"])
		}
	}
	if len(listed) != len(rules) {
		t.Errorf("the README's table lists %d alerts; alerts.yml has %d", len(listed), len(rules))
	}
}
