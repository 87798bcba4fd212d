package testutil

import "testing"

// CheckNewerRule feeds AT lines for client "c" one by one to the herd server at addr, which
// must take them as a neighbour's (its config gives it a neighbour on loopback), and fails t
// unless each gets no reply and leaves the record SPEC.md's newer rule keeps: the later time,
// compared exactly, then the larger line; stored without the white space around it.
func CheckNewerRule(t testing.TB, addr string) {
	t.Helper()
	const c = " c +1+1 "
	for _, step := range []struct{ in, want string }{
		{"AT M +0.000000000" + c + "1621464827.959498503", "AT M +0.000000000" + c + "1621464827.959498503"},
		// Equal as float64, one nanosecond later: newer even though the line is smaller.
		{"AT B +0.000000000" + c + "1621464827.959498504", "AT B +0.000000000" + c + "1621464827.959498504"},
		// Equal times: the byte-wise larger line wins, the smaller one is dropped.
		{"AT C +0.000000000" + c + "1621464827.959498504", "AT C +0.000000000" + c + "1621464827.959498504"},
		{"AT A +0.000000000" + c + "1621464827.959498504", "AT C +0.000000000" + c + "1621464827.959498504"},
		// Older: dropped.
		{"AT Z +0.000000000" + c + "1621464827.9594985", "AT C +0.000000000" + c + "1621464827.959498504"},
		// Stored without the white space around it.
		{" \tAT D +0.000000000" + c + "1621464827.959498504 \t", "AT D +0.000000000" + c + "1621464827.959498504"},
		// The same instant written differently is an equal time: the larger line wins.
		{"AT A +0.000000000" + c + "1621464828", "AT A +0.000000000" + c + "1621464828"},
		{"AT A +0.000000000" + c + "1621464828.0", "AT A +0.000000000" + c + "1621464828.0"},
		{"AT A +0.000000000" + c + "1621464828", "AT A +0.000000000" + c + "1621464828.0"},
		{" \tAT B +0.000000000" + c + "1621464828.0 \t", "AT B +0.000000000" + c + "1621464828.0"},
	} {
		if got := Exchange(t, addr, step.in+"\n"); got != "" {
			t.Fatalf("AT %q got a reply %q", step.in, got)
		}
		if !Knows(addr, "c", step.want) {
			t.Fatalf("after %q the record is not %q", step.in, step.want)
		}
	}
}
