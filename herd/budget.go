package herd

import (
	"syscall"
)

// Descriptors counted by a FileBudget besides client connections and Places connections.
const (
	// fdReserve is what the process holds whatever its servers: standard streams, the Go
	// runtime's poller, a CPU profile, the files opened for a moment (config, resolv.conf).
	fdReserve = 64
	// fdPerServer is what one server holds: its listener, gnet's stand-in listener, two
	// pollers with their eventfds, the waker's socketpair, its log file, and connections on
	// their way from the acceptor to the loop (the accepted one and gnet's duplicate).
	fdPerServer = 16
	// fdPerLink is one neighbour: the link this server dials and the one it accepts.
	fdPerLink = 2
	// fdAdmin is an admin listener and the connections it serves at once (an operator's
	// scrapes and pages: a handful).
	fdAdmin = 16
	// fdHeadroomMin is the least room a server keeps over max_clients for the connections
	// it accepts only to close them.
	fdHeadroomMin = 64
)

// FileBudget is how the open file limit of a process (RLIMIT_NOFILE) is shared among what its
// servers may hold open: each descriptor the process may use is counted, so that the limit
// is met only by connections over max_clients, which the servers accept and close at once
// (and past which the accept backs off: see reactor, Accepting). NewHerd makes one per process
// (Herd.FileBudget), NewServer one for a server alone. The zero value is not useful.
type FileBudget struct {
	Limit       uint64 // the soft RLIMIT_NOFILE the budget was made for
	Servers     int    // servers in the process
	Reserved    int    // descriptors of the process and its servers besides clients and Places
	PlacesConns int    // HTTP connections to the Places API (places.max_conns, or fewer)
	MaxClients  int    // client connections per server (limits.max_clients, or fewer)
	Headroom    int    // per server, over MaxClients (and a neighbour's room), for refused connections
	Lowered     bool   // PlacesConns or MaxClients is below the config's
}

// NewFileBudget shares limit (the soft RLIMIT_NOFILE) among the servers of cfg named in
// servers, as one process runs them with one Places provider:
//
//	reserved = 64 (the process) + per server 16, +16 with an admin_addr, +2 per neighbour
//	places   = places.max_conns for google and google-v1 (0 for offline; its default is
//	           places.workers x servers), lowered to half of limit - reserved if it is more
//	share    = (limit - reserved - places) / servers
//	headroom = max(share/8, 64)
//	clients  = min(max_clients, share - headroom), at least 1
//
// Connections from a neighbour's host may go one past max_clients per neighbour (see
// Limits.MaxClients): the reserve counts them with the links. Any goroutine.
func NewFileBudget(cfg *Config, servers []ServerConfig, limit uint64) FileBudget {
	b := FileBudget{
		Limit:       limit,
		Servers:     max(len(servers), 1),
		Reserved:    fdReserve,
		MaxClients:  cfg.Limits.MaxClients,
		Headroom:    fdHeadroomMin,
		PlacesConns: 0,
	}
	if p := cfg.Places.Provider; p == "google" || p == "google-v1" {
		b.PlacesConns = cfg.Places.MaxConns
		if b.PlacesConns == 0 {
			b.PlacesConns = cfg.Places.Workers * b.Servers // no call waits for a connection
		}
	}
	for _, sc := range servers {
		b.Reserved += fdPerServer + fdPerLink*len(sc.Peers)
		if sc.AdminAddr != "" {
			b.Reserved += fdAdmin
		}
	}
	if limit >= 1<<40 { // unlimited, in effect
		return b
	}
	avail := int64(limit) - int64(b.Reserved)
	if half := max(avail/2, 1); int64(b.PlacesConns) > half {
		b.PlacesConns, b.Lowered = int(half), true
	}
	share := (avail - int64(b.PlacesConns)) / int64(b.Servers)
	b.Headroom = int(max(share/8, fdHeadroomMin))
	if clients := max(share-int64(b.Headroom), 1); int64(b.MaxClients) > clients {
		b.MaxClients, b.Lowered = int(clients), true
	}
	return b
}

// fileLimit returns the soft RLIMIT_NOFILE of the process, or 1<<62 if it cannot be read.
func fileLimit() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 1 << 62
	}
	return rl.Cur
}
