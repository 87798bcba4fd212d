// Package ephemeral knows where the kernel takes the local ports of outgoing connections,
// so that the tests and the benchmark harness can give servers ports that no dial can take
// between the moment a port is found free and the moment a server listens on it.
package ephemeral

import (
	"os"
	"strconv"
	"strings"
)

// Low returns the first port of the kernel's ephemeral range
// (/proc/sys/net/ipv4/ip_local_port_range), or 32768, Linux's default, if it cannot be read.
// Any goroutine may call it.
func Low() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) < 1 {
		return 32768
	}
	n, err := strconv.Atoi(f[0])
	if err != nil {
		return 32768
	}
	return n
}
