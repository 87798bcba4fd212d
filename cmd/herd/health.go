package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/herd-project/herd/internal/cli"
)

// healthCmd is herd health: one GET of /healthz (or /readyz with -ready) from the admin
// listener at -addr. It exits 0 on a 200 and 1 otherwise, and needs nothing but the binary:
// a container's HEALTHCHECK in an image without a shell or curl.
func healthCmd(ctx context.Context, args []string, stdout io.Writer) error {
	fs := cli.FlagSet("herd health", io.Discard, nil) // parseFlags prints the usage
	addr := fs.String("addr", "", "the admin listener's host:port (a server's admin_addr)")
	ready := fs.Bool("ready", false, "ask /readyz instead of /healthz")
	timeout := fs.Duration("timeout", 2*time.Second, "how long to wait for the answer")
	rest, err := parseFlags(fs, args, stdout)
	if err != nil {
		return ignoreHelp(err)
	}
	switch {
	case *addr == "":
		return &usageError{"health needs -addr, the admin listener's host:port"}
	case len(rest) > 0:
		return &usageError{fmt.Sprintf("health takes no arguments, got %q", strings.Join(rest, " "))}
	case *timeout <= 0:
		return &usageError{"-timeout must be positive"}
	}
	path := "/healthz"
	if *ready {
		path = "/readyz"
	}
	url := "http://" + dialable(*addr) + path
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return &usageError{fmt.Sprintf("health: bad -addr %q: %v", *addr, err)}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("herd: health: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	text := strings.TrimSpace(string(body))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("herd: health: %s: %s: %s", url, resp.Status, text)
	}
	fmt.Fprintf(stdout, "herd: health: %s: %s\n", url, resp.Status)
	return nil
}
