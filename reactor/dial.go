package reactor

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/panjf2000/gnet/v2"
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
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		_ = nc.Close()
		return ErrClosed
	}
	l.enrolls.Add(1)
	l.mu.Unlock()
	tag := &dialTag{factory: f, addr: addr}
	ch, err := l.el.Enroll(gnet.NewContext(context.Background(), tag), nc)
	if err != nil {
		tag.arrived(l)
		_ = nc.Close()
		return err
	}
	// Never wait for this on the loop: gnet's worker needs the loop to run OnOpen. The loop
	// stays up until OnOpen has run (see gnetgaps.go, gap 6), so the answer comes, unless gnet
	// stopped on its own.
	select {
	case r := <-ch:
		if r.Err != nil {
			tag.arrived(l) // gnet failed before queueing the connection: no OnOpen
		}
		return r.Err
	case <-l.exited:
		return ErrClosed
	}
}
