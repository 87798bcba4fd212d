package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/herd-project/herd/herd"
	"github.com/herd-project/herd/herd/admin"
)

// adminGrace bounds how long the admin listeners wait for their requests under way at the end.
const adminGrace = 2 * time.Second

// admins are the admin listeners of the servers of this process that have an admin_addr.
type admins []*admin.Admin

// startAdmins starts the admin listener of every server of servers whose config has an
// admin_addr, before the servers start, so that a port already taken stops the process before
// it serves. On error the listeners already started are in the result, to be closed.
func startAdmins(cfg *herd.Config, servers []*herd.Server) (admins, error) {
	var as admins
	for _, s := range servers {
		addr := cfg.Server(s.Name()).AdminAddr
		if addr == "" {
			continue
		}
		a := admin.New(s, admin.Options{Version: version()})
		as = append(as, a)
		if err := a.Listen(addr); err != nil {
			return as, fmt.Errorf("herd: %w", err)
		}
	}
	return as, nil
}

// print says where each admin listener is.
func (as admins) print(w io.Writer) {
	for _, a := range as {
		fmt.Fprintf(w, "herd: %s admin on http://%s/ (metrics, healthz, readyz, status, pprof)\n", a.Name(), a.Addr())
	}
}

// close stops the admin listeners: they serve until the servers have stopped, so that a
// graceful stop can be watched.
func (as admins) close() {
	ctx, cancel := context.WithTimeout(context.Background(), adminGrace)
	defer cancel()
	for _, a := range as {
		a.Close(ctx)
	}
}
