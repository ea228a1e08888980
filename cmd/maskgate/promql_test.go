package main

import (
	"slices"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
)

// Prometheus's rule evaluation over series held in memory, for the alert tests.

// firing evaluates a rule as Prometheus does, once a minute from time 0: it fires at
// `at` when its expression has had a result at every evaluation of its `for` duration
// up to `at`.
func firing(t *testing.T, engine *promql.Engine, q storage.Queryable, r alertRule, at time.Duration) bool {
	t.Helper()
	var hold model.Duration
	if r.For != "" {
		var err error
		if hold, err = model.ParseDuration(r.For); err != nil {
			t.Fatalf("%s: for: %v", r.Alert, err)
		}
	}
	for ts := at - time.Duration(hold); ts <= at; ts += time.Minute {
		query, err := engine.NewInstantQuery(t.Context(), q, nil, r.Expr, time.Unix(0, 0).Add(ts))
		if err != nil {
			t.Fatalf("%s: %v", r.Alert, err)
		}
		vec, err := query.Exec(t.Context()).Vector()
		query.Close()
		if err != nil {
			t.Fatalf("%s at %v: %v", r.Alert, ts, err)
		}
		if len(vec) == 0 {
			return false
		}
	}
	return true
}

// testSeries is a series of the alert tests, a sample a minute from time 0.
type testSeries struct {
	metric string // name{label="value",...}
	values []float64
}

// rising is n samples from start, each step above the one before (promtool's
// "start+stepxn").
func rising(start, step float64, n int) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = start + float64(i)*step
	}
	return v
}

// store holds series for Prometheus's query engine.
func store(t *testing.T, series []testSeries) storage.Queryable {
	t.Helper()
	p := parser.NewParser(parser.Options{})
	var all []storage.Series
	for _, s := range series {
		lset, err := p.ParseMetric(s.metric)
		if err != nil {
			t.Fatalf("%s: %v", s.metric, err)
		}
		samples := make([]chunks.Sample, len(s.values))
		for i, v := range s.values {
			samples[i] = floatSample{t: time.Duration(i) * time.Minute, f: v}
		}
		all = append(all, storage.NewListSeries(lset, samples))
	}
	slices.SortFunc(all, func(a, b storage.Series) int { return labels.Compare(a.Labels(), b.Labels()) })
	return &storage.MockQueryable{MockQuerier: &storage.MockQuerier{
		SelectMockFunction: func(_ bool, _ *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
			matched := &seriesSet{}
			for _, s := range all {
				if lset := s.Labels(); !slices.ContainsFunc(ms, func(m *labels.Matcher) bool { return !m.Matches(lset.Get(m.Name)) }) {
					matched.series = append(matched.series, s)
				}
			}
			return matched
		},
	}}
}

// seriesSet is the series a query selected, in label order.
type seriesSet struct {
	series []storage.Series
	next   int // the index of the series after the current one
}

func (s *seriesSet) Next() bool                      { s.next++; return s.next <= len(s.series) }
func (s *seriesSet) At() storage.Series              { return s.series[s.next-1] }
func (*seriesSet) Err() error                        { return nil }
func (*seriesSet) Warnings() annotations.Annotations { return nil }

// floatSample is a float sample, t after time 0.
type floatSample struct {
	t time.Duration
	f float64
}

func (s floatSample) T() int64                    { return s.t.Milliseconds() }
func (floatSample) ST() int64                     { return 0 }
func (s floatSample) F() float64                  { return s.f }
func (floatSample) H() *histogram.Histogram       { return nil }
func (floatSample) FH() *histogram.FloatHistogram { return nil }
func (floatSample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s floatSample) Copy() chunks.Sample         { return s }
