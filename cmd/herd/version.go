package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// Stamped at build time where no git checkout is there to read (the Dockerfile, and
// scripts/build.sh for any build that wants it):
//
//	go build -ldflags "-X main.buildVersion=v1.2.0 -X main.buildCommit=0123abcd -X main.buildDate=2026-11-25T12:00:00Z" ./cmd/herd
//
// Empty ones come from runtime/debug.ReadBuildInfo: the module version go build derives from
// the checkout (a tag, or a pseudo-version), vcs.revision and vcs.time.
var buildVersion, buildCommit, buildDate string

// buildInfo is what herd version prints.
type buildInfo struct {
	version   string
	commit    string // "" when unknown
	modified  bool   // built from a checkout with uncommitted changes (known without stamps only)
	date      string // the build date, or the commit's time when no date was stamped; "" when unknown
	dateIsVCS bool
	goVersion string
}

// readBuildInfo gathers the stamps and what the Go toolchain recorded in the binary.
func readBuildInfo() buildInfo {
	bi, _ := debug.ReadBuildInfo()
	return buildInfoFrom(bi, buildVersion, buildCommit, buildDate)
}

// buildInfoFrom prefers the -ldflags stamps (version, commit, date) to what bi (nil: none)
// recorded.
func buildInfoFrom(bi *debug.BuildInfo, version, commit, date string) buildInfo {
	b := buildInfo{version: version, commit: commit, date: date, goVersion: runtime.Version()}
	if bi != nil {
		b.goVersion = bi.GoVersion
		if b.version == "" {
			b.version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch {
			case s.Key == "vcs.revision" && commit == "":
				b.commit = s.Value
			case s.Key == "vcs.modified" && commit == "":
				b.modified = s.Value == "true"
			case s.Key == "vcs.time" && date == "":
				b.date, b.dateIsVCS = s.Value, true
			}
		}
	}
	if b.version == "" {
		b.version = "(devel)"
	}
	return b
}

// print writes herd version's output: the version, then one "key: value" line each.
func (b buildInfo) print(w io.Writer) {
	fmt.Fprintf(w, "herd %s\n", b.version)
	commit := b.commit
	switch {
	case commit == "":
		commit = "unknown (built outside a git checkout without -ldflags stamps)"
	case b.modified:
		commit += " (with uncommitted changes)"
	}
	fmt.Fprintf(w, "commit: %s\n", commit)
	switch {
	case b.date == "":
		fmt.Fprintln(w, "built: unknown")
	case b.dateIsVCS:
		fmt.Fprintf(w, "built: from the commit of %s\n", b.date)
	default:
		fmt.Fprintf(w, "built: %s\n", b.date)
	}
	fmt.Fprintf(w, "go: %s %s/%s\n", b.goVersion, runtime.GOOS, runtime.GOARCH)
}

// version returns the version in one word and the short commit: what the admin listener
// reports.
func version() string {
	b := readBuildInfo()
	if b.commit == "" {
		return b.version
	}
	c := b.commit
	if len(c) > 12 {
		c = c[:12]
	}
	return b.version + " (" + c + ")"
}
