//go:build !linux

package main

import "time"

// preciseSleep sleeps d (time.Sleep; on Linux, see sleep_linux.go).
func preciseSleep(d time.Duration) { time.Sleep(d) }
