package reactor

import (
	"testing"

	"github.com/herd-project/herd/internal/testutil"
)

// TestMain fails the run if a loop leaves a goroutine behind after its Stop.
func TestMain(m *testing.M) {
	testutil.VerifyTestMain(m)
}
