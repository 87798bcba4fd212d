// Package testutil holds the helpers the module's tests share: waiting for a condition,
// a buffer a process writes while the test reads, talking to a line server over loopback, a
// herd config written for a test, a child process with its output, and the goroutine-leak
// check.
//
// Every helper that waits does so for a condition, never for a fixed time, and gives up after
// Patience: long enough that a loaded two-core machine does not fail a correct test, short
// enough that a broken one fails instead of hanging. Helpers that take a testing.TB call its
// Fatal methods, so they may be called only from the test's own goroutine unless their doc
// says otherwise; the others, from any goroutine.
//
// The package imports nothing of the module, so that every package's tests may use it,
// reactor's and codec's included.
package testutil
