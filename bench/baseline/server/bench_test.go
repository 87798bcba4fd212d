package server

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/herd-project/herd/internal/testutil"
)

// BenchmarkIAMAT measures one loopback round trip of 16 pipelined IAMATs (one write, 16
// replies read back) on one connection to a baseline server with logging off.
func BenchmarkIAMAT(b *testing.B) {
	addr := startHill(b, "")
	c := testutil.Dial(b, addr).TCP
	const depth = 16
	req := []byte(strings.Repeat("IAMAT kiwi.cs.ucla.edu +34.068930-118.445127 1621464827.959498503\n", depth))
	buf := make([]byte, 64<<10)
	b.ReportAllocs()
	b.SetBytes(int64(len(req)))
	for b.Loop() {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		for n := 0; n < depth; {
			m, err := c.Read(buf)
			if err != nil && err != io.EOF {
				b.Fatal(err)
			}
			n += bytes.Count(buf[:m], []byte{'\n'})
		}
	}
	b.ReportMetric(float64(b.N*depth)/b.Elapsed().Seconds(), "replies/s")
}
