package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/common/version"
)

// buildVersion is maskgate's version: the one the build stamped with
// -X github.com/prometheus/common/version.Version=… (the Dockerfile's VERSION argument),
// else what Go recorded for the main module: a pseudo-version naming the commit when
// it was built in a git checkout, "(devel)" otherwise.
func buildVersion() string {
	if version.Version != "" {
		return version.Version
	}
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" {
		return info.Main.Version
	}
	return "unknown"
}

// buildInfoCollector exports maskgate_build_info, so that during a rolling upgrade the
// replicas' versions can be told apart (README, Upgrades).
func buildInfoCollector() prometheus.Collector {
	return versioncollector.NewCollector("maskgate", versioncollector.WithExtraConstLabels(prometheus.Labels{"version": buildVersion()}))
}

// printVersion is the version subcommand.
func printVersion(out io.Writer) error {
	_, err := fmt.Fprintf(out, "maskgate %s (revision %s, %s %s/%s)\n", buildVersion(), version.GetRevision(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return err
}
