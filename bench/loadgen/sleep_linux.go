package main

import (
	"syscall"
	"time"
)

// preciseSleep sleeps d. time.Sleep wakes through the runtime's netpoller, whose epoll timeout
// is in whole milliseconds: a 100 us sleep takes about 1.1 ms, and at 1,000 requests/s the
// open loop would send each request up to a millisecond late and charge that to the server.
// So the last 2 ms are slept with nanosleep(2) on this goroutine's thread, which wakes within
// about 0.1 ms (the kernel's timer slack). The thread keeps its P until the runtime's sysmon
// takes it back, which may take a while: with several connections sleeping so on 2 cores the
// readers would wait for a P, so the runner uses it for one connection only.
func preciseSleep(d time.Duration) {
	const coarse = 2 * time.Millisecond
	deadline := time.Now().Add(d)
	if d > coarse {
		time.Sleep(d - coarse)
	}
	for {
		rem := time.Until(deadline)
		if rem <= 0 {
			return
		}
		ts := syscall.NsecToTimespec(int64(rem))
		if err := syscall.Nanosleep(&ts, nil); err != syscall.EINTR {
			return
		}
	}
}
