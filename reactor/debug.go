package reactor

import (
	"runtime"
	"sync"
)

// stackBufs holds the buffers goid hands to runtime.Stack (which makes them escape), so that
// a call allocates nothing.
var stackBufs = sync.Pool{New: func() any { return new([64]byte) }}

// goid returns the calling goroutine's id, parsed from the "goroutine N [" header of its stack.
// It costs a traceback of the caller's stack (a microsecond or more, growing with the depth),
// which is why only Debug checks and rare paths use it.
func goid() int64 {
	buf := stackBufs.Get().(*[64]byte)
	defer stackBufs.Put(buf)
	n := runtime.Stack(buf[:], false)
	b := buf[:n]
	const prefix = "goroutine "
	if len(b) <= len(prefix) || string(b[:len(prefix)]) != prefix {
		return -1
	}
	var id int64
	i := len(prefix)
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		id = id*10 + int64(b[i]-'0')
	}
	if i == len(prefix) {
		return -1
	}
	return id
}

// debugCounters count what tests of the loop check and production code never reads; a loop
// has them in Debug mode only.
type debugCounters struct {
	wakes   uint64 // waker writes; guarded by Loop.mu
	writers int    // half-close writer goroutines started; loop only
}
