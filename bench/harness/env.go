package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// environment describes the machine and the versions a report was measured with.
type environment struct {
	Date    string
	CPU     string
	Cores   int
	Memory  string
	Kernel  string
	Go      string
	Gnet    string
	Redis   string
	Python  string
	Aiohttp string
	Uvloop  string
	Node    string
	Commit  string
	Load    string
}

func collectEnv(ctx context.Context, t *tools) environment {
	e := environment{Date: time.Now().UTC().Format("2006-01-02 15:04 UTC"), Cores: runtime.NumCPU()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				e.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
				f := strings.Fields(v)
				if kb, err := strconv.ParseFloat(f[0], 64); err == nil {
					e.Memory = fmt.Sprintf("%.1f GiB", kb/(1<<20))
				}
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		e.Kernel = "Linux " + strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		e.Load = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	out, _ := runCmd(ctx, t.repo, time.Minute, "go", "version")
	e.Go = strings.TrimPrefix(firstLine(out), "go version ")
	e.Gnet = moduleVersion(filepath.Join(t.repo, "go.mod"), "github.com/panjf2000/gnet/v2")
	if t.redis != "" {
		out, _ := runCmd(ctx, t.repo, time.Minute, t.redis, "--version")
		if m := regexp.MustCompile(`v=(\S+)`).FindStringSubmatch(out); m != nil {
			e.Redis = m[1]
		}
	}
	if exists(t.python) {
		out, _ := runCmd(ctx, t.repo, time.Minute, t.python, "--version")
		e.Python = strings.TrimPrefix(firstLine(out), "Python ")
		out, err := runCmd(ctx, t.repo, time.Minute, t.python, "-c", "import aiohttp; print(aiohttp.__version__)")
		if err == nil {
			e.Aiohttp = firstLine(out)
		}
		out, err = runCmd(ctx, t.repo, time.Minute, t.python, "-c", "import uvloop; print(uvloop.__version__)")
		if err == nil {
			e.Uvloop = firstLine(out)
		}
	}
	if t.node != "" {
		out, _ := runCmd(ctx, t.repo, time.Minute, t.node, "--version")
		e.Node = strings.TrimPrefix(firstLine(out), "v")
	}
	out, err := runCmd(ctx, t.repo, time.Minute, "git", "rev-parse", "--short", "HEAD")
	if err == nil {
		e.Commit = firstLine(out)
		if st, err := runCmd(ctx, t.repo, time.Minute, "git", "status", "--porcelain", "--untracked-files=no"); err == nil && strings.TrimSpace(st) != "" {
			e.Commit += " (with uncommitted changes)"
		}
	}
	return e
}

// moduleVersion returns the version go.mod requires for module path, or "".
func moduleVersion(gomod, path string) string {
	b, err := os.ReadFile(gomod)
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "require")))
		if len(f) >= 2 && f[0] == path {
			return f[1]
		}
	}
	return ""
}

// allocLine is one benchmark line of go test -benchmem.
type allocLine struct {
	Name        string
	NsPerOp     float64
	BytesPerOp  float64
	AllocsPerOp float64
	Line        string
}

const allocsCommand = "go test -run '^$' -bench BenchmarkIAMAT -benchmem ./herd/"

// measureAllocs runs the herd package's IAMAT benchmarks and parses their allocations.
func (h *harness) measureAllocs(ctx context.Context) ([]allocLine, string) {
	out, err := runCmd(ctx, h.o.repo, 10*time.Minute, "go", "test", "-run", "^$", "-bench", "BenchmarkIAMAT", "-benchmem", "./herd/")
	lines := parseBench(out)
	if err != nil {
		return lines, "not available: " + allocsCommand + " failed: " + firstLine(out+" "+err.Error())
	}
	if len(lines) == 0 {
		return nil, "not available: the herd package has no BenchmarkIAMAT"
	}
	return lines, ""
}

var benchRE = regexp.MustCompile(`^(Benchmark\S+)\s+\d+\s+([\d.]+) ns/op(?:.*?\s([\d.]+) B/op)?(?:.*?\s([\d.]+) allocs/op)?`)

func parseBench(out string) []allocLine {
	var ls []allocLine
	for _, l := range strings.Split(out, "\n") {
		m := benchRE.FindStringSubmatch(strings.TrimSpace(l))
		if m == nil {
			continue
		}
		a := allocLine{Name: m[1], Line: strings.TrimSpace(l)}
		a.NsPerOp, _ = strconv.ParseFloat(m[2], 64)
		a.BytesPerOp, _ = strconv.ParseFloat(m[3], 64)
		a.AllocsPerOp, _ = strconv.ParseFloat(m[4], 64)
		if m[4] == "" {
			a.AllocsPerOp = -1
		}
		ls = append(ls, a)
	}
	return ls
}
