package herd

import (
	"testing"

	"github.com/herd-project/herd/internal/testutil"
)

// WithServers builds part of a herd (herd serve NAME): only the servers named, linked to the
// others at the addresses of the config.
func TestHerdWithServers(t *testing.T) {
	cfg := testConfig(t, "", ServerConfig{Name: "A", Peers: []string{"B"}}, ServerConfig{Name: "B"})
	a := startServer(t, cfg, "A")
	cfg.Server("A").Addr, cfg.Server("A").PeerAddr = a.Addr().String(), a.PeerAddr().String()
	h := newHerd(t, cfg, WithServers("B"))
	if len(h.Servers()) != 1 || h.Server("B") == nil || h.Server("A") != nil {
		t.Fatalf("servers %v, want B alone", h.Servers())
	}
	if err := h.Start(); err != nil {
		t.Fatal(err)
	}
	b := h.Server("B")
	testutil.WaitFor(t, "B's link to A", func() bool { return b.Metrics().LinksUp.Load() == 1 })
	c := testutil.Dial(t, b.Addr().String())
	c.Send("IAMAT x +1+1 5\n")
	c.Line()
	testutil.WaitFor(t, "the flood to A", func() bool { _, ok := a.Record("x"); return ok })

	if _, err := NewHerd(cfg, WithServers("Nobody")); !IsConfigError(err) {
		t.Errorf("unknown name: %v, want a ConfigError", err)
	}
}
