package reactor

import (
	"context"
	"fmt"
	"net"
	"time"
)

// Dial connects to addr ("host:port") and serves the connection on this loop with a Protocol
// from f. It never blocks: the connect runs on a goroutine of its own. On success
// ConnectionMade runs on the loop; on failure, or if timeout (> 0) passes first, onError runs on
// the loop with an error wrapping the cause. If the loop stops first, onError is not called.
// Loop or any goroutine; called before Start, the connect waits until the loop runs.
func (l *Loop) Dial(addr string, f ProtocolFactory, timeout time.Duration, onError func(error)) {
	if onError == nil {
		onError = func(error) {}
	}
	if !l.track(&l.dialWG) {
		return
	}
	go func() {
		defer l.dialWG.Done()
		select {
		case <-l.started:
		case <-l.stopCh:
			return
		}
		err := l.dial(addr, f, timeout)
		if err != nil {
			err = fmt.Errorf("reactor: dial %s: %w", addr, err)
			_ = l.CallSoonThreadsafe(func() { onError(err) })
		}
	}()
}

func (l *Loop) dial(addr string, f ProtocolFactory, timeout time.Duration) error {
	ctx := l.rootCtx
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	nc, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	tag := &enrollTag{factory: f, outbound: true}
	ch, err := l.enroll(nc, tag)
	if err != nil {
		return err
	}
	// Never wait for this on the loop: gnet's worker needs the loop to run OnOpen. The loop
	// stays up until the connection has arrived (see gnetgaps.go, gap 5), so the answer comes,
	// unless gnet stopped on its own.
	select {
	case r := <-ch:
		tag.arrived(l) // if OnOpen did not run (gnet failed to queue the connection)
		return r.Err
	case <-l.exited:
		return ErrClosed
	}
}
