package herd

import (
	"testing"

	"github.com/herd-project/herd/internal/testutil"
)

// Every server's goroutines (its loop, its log writer, its Places calls) end with Shutdown;
// what the libraries keep for the process is passed over (testutil.LibraryGoroutines).
func TestMain(m *testing.M) {
	testutil.VerifyTestMain(m)
}
