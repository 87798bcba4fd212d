package testutil

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Node is one server of a Config.
type Node struct {
	Name string
	// Addr is where the server listens; "" is 127.0.0.1:0.
	Addr string
	// PeerAddr is where a server of package herd listens for its neighbours' links; "" is
	// the default (Addr's port + 10000, port 0 staying 0).
	PeerAddr string
	// Plain marks a server of another implementation (the Python baseline): package herd's
	// servers link with it by bare AT lines on its Addr.
	Plain bool
	// Link, when set, is the server's link mode (link = ...), "plain-per-message" say; it
	// overrides Plain.
	Link  string
	Peers []string
	// Admin gives the server an admin listener on 127.0.0.1:0.
	Admin bool
}

// Config is a herd config for a test, in the TOML that herd, the goroutine baseline and the
// Python baseline all read. Its zero value is a herd of no servers with the offline Places
// provider and no log files.
type Config struct {
	// PlacesURL points the google provider (with key "test-key") at a fake Places server;
	// "" is the offline provider.
	PlacesURL string
	// PlacesTimeout is places.timeout; "" leaves the default.
	PlacesTimeout string
	// LogDir is log.dir; "" is "off".
	LogDir string
	// Limits is the body of the [limits] table, TOML lines; "" leaves it out.
	Limits string
	Nodes  []Node
}

// TOML renders c.
func (c Config) TOML() string {
	var b strings.Builder
	if c.PlacesURL == "" {
		b.WriteString("[places]\nprovider = \"offline\"\n")
	} else {
		fmt.Fprintf(&b, "[places]\nprovider = \"google\"\nurl = %q\nkey = \"test-key\"\n", c.PlacesURL)
	}
	if c.PlacesTimeout != "" {
		fmt.Fprintf(&b, "timeout = %q\n", c.PlacesTimeout)
	}
	logDir := c.LogDir
	if logDir == "" {
		logDir = "off"
	}
	fmt.Fprintf(&b, "\n[log]\ndir = %q\n", logDir)
	if c.Limits != "" {
		fmt.Fprintf(&b, "\n[limits]\n%s\n", strings.TrimSuffix(c.Limits, "\n"))
	}
	for _, n := range c.Nodes {
		addr := n.Addr
		if addr == "" {
			addr = "127.0.0.1:0"
		}
		peers := make([]string, len(n.Peers))
		for i, p := range n.Peers {
			peers[i] = fmt.Sprintf("%q", p)
		}
		fmt.Fprintf(&b, "\n[[server]]\nname = %q\naddr = %q\npeers = [%s]\n", n.Name, addr, strings.Join(peers, ", "))
		if n.PeerAddr != "" {
			fmt.Fprintf(&b, "peer_addr = %q\n", n.PeerAddr)
		}
		switch {
		case n.Link != "":
			fmt.Fprintf(&b, "link = %q\n", n.Link)
		case n.Plain:
			b.WriteString("link = \"plain\"\n")
		}
		if n.Admin {
			b.WriteString("admin_addr = \"127.0.0.1:0\"\n")
		}
	}
	return b.String()
}

// Write writes c's TOML to a file herd.toml in a new temporary directory of the test and
// returns its path.
func (c Config) Write(t testing.TB) string {
	t.Helper()
	return WriteFile(t, t.TempDir(), "herd.toml", c.TOML())
}

// WriteFile writes text to the file name in dir and returns its path, failing t if it cannot.
func WriteFile(t testing.TB, dir, name, text string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
