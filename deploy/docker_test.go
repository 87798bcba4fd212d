package deploy

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// parseDockerfile parses path with BuildKit's own parser and linter (every rule, the
// experimental ones too); a lint warning fails the test.
func parseDockerfile(t *testing.T, path string) []instructions.Stage {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	for _, w := range res.Warnings {
		t.Errorf("%s: parser: %s", path, w.Short)
	}
	lint := linter.New(&linter.Config{ExperimentalAll: true, Warn: func(rule, _, _, msg string, loc []parser.Range) {
		t.Errorf("%s:%d: lint %s: %s", path, loc[0].Start.Line, rule, msg)
	}})
	stages, _, err := instructions.Parse(res.AST, lint)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return stages
}

// The Dockerfile: two stages, a static build with the version stamped, and a final image
// that runs as a non-root user, exposes the client, peer and admin ports of its config, and
// checks its health with the binary alone.
func TestDockerfile(t *testing.T) {
	const path = "Dockerfile"
	stages := parseDockerfile(t, path)
	if len(stages) != 2 {
		t.Fatalf("%d stages, want 2 (build, then the image)", len(stages))
	}
	build, final := stages[0], stages[1]

	gomod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	goVersion := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	if goVersion == nil || !strings.HasPrefix(build.BaseName, "golang:"+string(goVersion[1])) {
		t.Errorf("build stage FROM %s: want golang:%s, the go.mod's Go", build.BaseName, goVersion[1])
	}
	var builds bool
	for _, c := range build.Commands {
		if r, ok := c.(*instructions.RunCommand); ok && strings.Contains(strings.Join(r.CmdLine, " "), "scripts/build.sh") {
			builds = true
		}
	}
	script, err := os.ReadFile("../scripts/build.sh")
	if err != nil {
		t.Fatal(err)
	}
	if !builds || !bytes.Contains(script, []byte("CGO_ENABLED=0 go build")) || !bytes.Contains(script, []byte("-X main.buildCommit=")) {
		t.Errorf("the build stage should run scripts/build.sh, which builds with CGO_ENABLED=0 and stamps the version")
	}

	var (
		user        string
		exposed     []int
		health      []string
		entry, cmd  []string
		configCopy  bool
		copiedFiles []string
	)
	for _, c := range final.Commands {
		switch c := c.(type) {
		case *instructions.UserCommand:
			user = c.User
		case *instructions.ExposeCommand:
			for _, p := range c.Ports {
				n, err := strconv.Atoi(strings.TrimSuffix(p, "/tcp"))
				if err != nil {
					t.Errorf("EXPOSE %s: want a TCP port", p)
				}
				exposed = append(exposed, n)
			}
		case *instructions.HealthCheckCommand:
			health = c.Health.Test
		case *instructions.EntrypointCommand:
			if c.PrependShell {
				t.Errorf("ENTRYPOINT in shell form: the image has no shell")
			}
			entry = c.CmdLine
		case *instructions.CmdCommand:
			if c.PrependShell {
				t.Errorf("CMD in shell form: the image has no shell")
			}
			cmd = c.CmdLine
		case *instructions.CopyCommand:
			if c.From == "" {
				copiedFiles = append(copiedFiles, c.SourcePaths...)
				configCopy = configCopy || c.DestPath == "/etc/herd/herd.toml"
			}
		case *instructions.RunCommand:
			t.Errorf("RUN in the final stage: the image has no shell")
		}
	}
	if uid, _, _ := strings.Cut(user, ":"); uid == "" || uid == "0" || uid == "root" {
		t.Errorf("USER %q: the image must run as a non-root user", user)
	}
	for _, f := range copiedFiles {
		if _, err := os.Stat(filepath.Join("..", f)); err != nil {
			t.Errorf("COPY %s: %v", f, err)
		}
	}
	if !configCopy {
		t.Fatalf("no config copied to /etc/herd/herd.toml")
	}

	cfg := loadConfig(t, "docker/herd.toml")
	if len(entry) != 1 || len(cmd) < 2 || cmd[0] != "serve" {
		t.Fatalf("ENTRYPOINT %q CMD %q: want the binary, then serve ... NAME", entry, cmd)
	}
	if i := slices.Index(cmd, "-config"); i < 0 || cmd[i+1] != "/etc/herd/herd.toml" {
		t.Errorf("CMD %q does not read /etc/herd/herd.toml", cmd)
	}
	sc := cfg.Server(cmd[len(cmd)-1])
	if sc == nil {
		t.Fatalf("CMD serves %q, which docker/herd.toml does not have", cmd[len(cmd)-1])
	}
	if !cfg.Log.Stderr() {
		t.Errorf("docker/herd.toml log.dir = %q: want \"-\", so that docker logs shows them", cfg.Log.Dir)
	}
	client, admin := port(t, sc.Addr), port(t, sc.AdminAddr)
	for _, p := range []int{client, client + 10000, admin} {
		if !slices.Contains(exposed, p) {
			t.Errorf("port %d (client %d, peer = client + 10000, admin %d) is not exposed: %v", p, client, admin, exposed)
		}
	}
	if len(health) < 4 || health[0] != "CMD" || health[1] != entry[0] || health[2] != "health" {
		t.Fatalf("HEALTHCHECK %q: want the exec form running %s health", health, entry[0])
	}
	if i := slices.Index(health, "-addr"); i < 0 || port(t, health[i+1]) != admin {
		t.Errorf("HEALTHCHECK %q does not ask the admin listener (port %d)", health, admin)
	}

	ignore, err := os.ReadFile("Dockerfile.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(strings.Fields(string(ignore)), ".git") {
		t.Errorf("Dockerfile.dockerignore does not leave out .git")
	}
}
