package testutil

import (
	"testing"

	"go.uber.org/goleak"
)

// LibraryGoroutines lists the goroutines that the module's libraries start and never stop,
// which a leak check must pass over: gnet's process-wide worker pool (ants), fasthttp's
// cleaners and idle workers (of the Places client and of the fake Places server),
// lumberjack's remover of old log files (one per rotating log), and the expiry sweep of an
// expirable LRU (places.Cache). Naming a library a package does not use
// costs nothing: no goroutine of it can show up.
func LibraryGoroutines() []goleak.Option {
	return []goleak.Option{
		goleak.IgnoreAnyFunction("github.com/panjf2000/ants/v2.(*goWorker).run.func1"),
		goleak.IgnoreAnyFunction("github.com/panjf2000/ants/v2.(*poolCommon).purgeStaleWorkers"),
		goleak.IgnoreAnyFunction("github.com/panjf2000/ants/v2.(*poolCommon).ticktock"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*Client).mCleaner"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*HostClient).connsCleaner"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*TCPDialer).tcpAddrsClean"),
		goleak.IgnoreAnyFunction("gopkg.in/natefinch/lumberjack%2ev2.(*Logger).millRun"),
		goleak.IgnoreAnyFunction("github.com/hashicorp/golang-lru/v2/expirable.NewLRU[...].func1"),
	}
}

// VerifyTestMain runs a package's tests and fails the run if any goroutine but the
// libraries' (LibraryGoroutines) is still running when they are done. Call it from TestMain.
func VerifyTestMain(m *testing.M) {
	goleak.VerifyTestMain(m, LibraryGoroutines()...)
}

// VerifyNone fails t if any goroutine but the libraries' and those matched by opts is running.
// Call it (deferred) from the test's goroutine.
func VerifyNone(t testing.TB, opts ...goleak.Option) {
	t.Helper()
	goleak.VerifyNone(t, append(LibraryGoroutines(), opts...)...)
}
