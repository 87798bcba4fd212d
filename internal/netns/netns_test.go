package netns

import (
	"net"
	"testing"
	"time"

	"github.com/herd-project/herd/internal/testutil"
)

// TestLab: hosts reach each other and the hub on the segment; a cut host reaches only itself
// until healed; and when the Lab's test ends its namespaces are gone.
func TestLab(t *testing.T) {
	Need(t)
	var lab *Lab
	t.Run("lab", func(t *testing.T) {
		lab = New(t, "a", "b")
		a, b := lab.Host("a"), lab.Host("b")
		var ln net.Listener
		if err := a.do(func() (err error) { ln, err = net.Listen("tcp", a.IP+":0"); return err }); err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		accepted := testutil.Serve(t, ln, nil)
		reach := func(from *Host) error {
			c, err := from.Dial(ln.Addr().String(), 300*time.Millisecond)
			if err == nil {
				c.Close()
			}
			return err
		}
		for _, from := range []*Host{a, b, lab.Hub} {
			if err := reach(from); err != nil {
				t.Errorf("%s to a: %v", from.Name, err)
			}
		}
		a.Cut()
		if err := reach(b); err == nil {
			t.Error("b reached a cut host")
		}
		if err := reach(a); err != nil {
			t.Errorf("a to itself while cut: %v", err)
		}
		a.Heal()
		testutil.WaitFor(t, "b to reach a again", func() bool { return reach(b) == nil })
		if accepted() < 4 {
			t.Errorf("a accepted %d connections", accepted())
		}
		if len(lab.Namespaces()) != 3 {
			t.Errorf("namespaces %v, want 3", lab.Namespaces())
		}
	})
	if lab != nil && len(lab.Namespaces()) != 0 {
		t.Errorf("left behind: %v", lab.Namespaces())
	}
}
