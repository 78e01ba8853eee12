package qemu

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/teastick/teastick/firmware/core"
	"github.com/teastick/teastick/firmware/core/client"
)

// SpinCheck is issue 13's scenario, "one actor must never take the stick
// down", played against a stick's API and console: the stick on QEMU
// (qemu/spin_test.go) and the hosted stick (firmware/stick/spin_test.go)
// run the same check.
//
// The stick serves three actors: Echo (the example echo), Spin, whose
// calls loop forever (runtime/testdata/spin.wat, operation "forever"),
// and Crunch, which computes for a bounded time
// (runtime/testdata/crunch.wat). Run times echo idle; then it starts
// Spinners calls of Spin, back to back, and one call of Crunch, and once
// the stick's status counts a spin call running it types a command on the
// console, asks for the status and keeps calling echo; then it checks
// that the stick still serves. Every spin call must end with 504 deadline,
// no earlier than its timeout; every other answer must come within Wait,
// so a stick that stops answering fails the check instead of hanging it.
type SpinCheck struct {
	// Client talks to the stick's API. Its Timeout must let a call of
	// Crunch finish while it shares the core.
	Client *client.Client
	// Echo, Spin and Crunch name the three actors in the manifest.
	Echo, Spin, Crunch string
	// SpinTimeout is Spin's timeout_ms in the manifest.
	SpinTimeout time.Duration
	// Spinners is how many calls of Spin run at once (at most Spin's
	// max_concurrent); the second and later start SpinTimeout/Spinners
	// apart, so that some spin call is in flight nearly all the time.
	Spinners int
	// CrunchSteps is Crunch's payload: how many generator steps it runs.
	CrunchSteps uint32
	// EchoCalls is how many echo calls are timed idle and afterwards, and
	// the least number answered while a spin call was in flight.
	EchoCalls int
	// Wait bounds each echo call, status request and console answer.
	Wait time.Duration
	// Console types command into the stick's console and returns the
	// first line from then on that starts with prefix, or an error when
	// none comes before ctx ends.
	Console func(ctx context.Context, command, prefix string) (string, error)
	// Heartbeats counts the heartbeat lines the stick printed so far.
	// The check switches the console to its verbose view (a heartbeat a
	// second) first.
	Heartbeats func() int
}

// SpinReport is what a SpinCheck saw.
type SpinReport struct {
	// EchoIdle are echo's latencies before any spin call; EchoSpinning
	// those of echo calls sent and answered while one spin call was in
	// flight; EchoAfter those once every spin call had ended.
	EchoIdle, EchoSpinning, EchoAfter []time.Duration
	// EchoOverlapping counts echo calls made in the spinning phase that
	// did not fall inside one spin call (around a spin call's end).
	EchoOverlapping int
	// Spins are the spin calls' durations, sent to 504 deadline.
	Spins []time.Duration
	// Crunch is the compute call's duration while the spin calls ran.
	Crunch time.Duration
	// Console is the console's answer, typed while the stick ran a spin
	// call, and how long it took.
	Console     string
	ConsoleWait time.Duration
	// Heartbeats is how many heartbeat lines the stick printed during the
	// spinning phase, which lasted Spinning.
	Heartbeats int
	Spinning   time.Duration
}

// span is one call from sending to its answer, on the host's clock.
type span struct{ start, end time.Time }

func (s span) within(o span) bool { return !s.start.Before(o.start) && !s.end.After(o.end) }

// Crunched is crunch.wat's answer for n steps: xorshift64 (13, 7, 17)
// from 0x9e3779b97f4a7c15.
func Crunched(n uint32) uint64 {
	x := uint64(0x9e3779b97f4a7c15)
	for range n {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
	}
	return x
}

// ErrSpinCheck marks a stick that failed the check.
var ErrSpinCheck = errors.New("spin check")

func (c SpinCheck) fail(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrSpinCheck, fmt.Sprintf(format, args...))
}

// echo calls Echo once and checks its answer.
func (c SpinCheck) echo(ctx context.Context, label string) (span, error) {
	ctx, cancel := context.WithTimeout(ctx, c.Wait)
	defer cancel()
	payload := fmt.Appendf(nil, "echo %s at %s", label, time.Now().Format(time.RFC3339Nano))
	s := span{start: time.Now()}
	r, err := c.Client.Invoke(ctx, c.Echo, "echo", payload)
	s.end = time.Now()
	if err != nil {
		return s, c.fail("echo %s: no answer within %v: %v", label, c.Wait, err)
	}
	if string(r.Output) != string(payload) {
		return s, c.fail("echo %s answered %q, want %q", label, r.Output, payload)
	}
	return s, nil
}

// spin calls Spin once; it must end with 504 deadline, not before Spin's
// timeout.
func (c SpinCheck) spin(ctx context.Context) (span, error) {
	ctx, cancel := context.WithTimeout(ctx, c.SpinTimeout+c.Wait)
	defer cancel()
	s := span{start: time.Now()}
	_, err := c.Client.Invoke(ctx, c.Spin, "forever", nil)
	s.end = time.Now()
	var e *client.Error
	switch {
	case err == nil:
		return s, c.fail("a spin call answered 200")
	case !errors.As(err, &e):
		return s, c.fail("a spin call did not end within %v after its timeout: %v", c.Wait, err)
	case e.Status != http.StatusGatewayTimeout || e.Code != "deadline":
		return s, c.fail("a spin call answered %d %s (%s), want 504 deadline", e.Status, e.Code, e.Message)
	case s.end.Sub(s.start) < c.SpinTimeout:
		return s, c.fail("a spin call ended with deadline after %v, before its timeout %v", s.end.Sub(s.start), c.SpinTimeout)
	}
	return s, nil
}

// crunch calls Crunch once and checks its answer.
func (c SpinCheck) crunch(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	r, err := c.Client.Invoke(ctx, c.Crunch, "run", binary.BigEndian.AppendUint32(nil, c.CrunchSteps))
	d := time.Since(start)
	if err != nil {
		return d, c.fail("crunch: %v", err)
	}
	if want := Crunched(c.CrunchSteps); len(r.Output) != 8 || binary.LittleEndian.Uint64(r.Output) != want {
		return d, c.fail("crunch answered %x, want %016x little-endian", r.Output, want)
	}
	return d, nil
}

// serving checks that the status answers and every actor serves.
func (c SpinCheck) serving(ctx context.Context, when string) error {
	ctx, cancel := context.WithTimeout(ctx, c.Wait)
	defer cancel()
	st, err := c.Client.Status(ctx)
	if err != nil {
		return c.fail("status %s: no answer within %v: %v", when, c.Wait, err)
	}
	if !st.Ready {
		return c.fail("status %s: not ready", when)
	}
	for _, a := range st.Actors {
		if a.State != core.StateServing {
			return c.fail("status %s: actor %s %s %s", when, a.Name, a.State, a.Error)
		}
	}
	return nil
}

// spinRunning reports whether the stick is running a spin call: it
// counts one started and not failed (a spin call never succeeds).
func (c SpinCheck) spinRunning(ctx context.Context) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, c.Wait)
	defer cancel()
	st, err := c.Client.Status(ctx)
	if err != nil {
		return false, c.fail("status while a spin call starts: no answer within %v: %v", c.Wait, err)
	}
	for _, a := range st.Actors {
		if a.Name == c.Spin {
			return a.Calls > a.Failed, nil
		}
	}
	return false, c.fail("status names no actor %s", c.Spin)
}

// Run plays the scenario and returns what it saw, or the first failure.
func (c SpinCheck) Run(ctx context.Context) (*SpinReport, error) {
	rep := &SpinReport{}
	// The quiet console prints a heartbeat a minute: ask for one a second.
	wctx, cancel := context.WithTimeout(ctx, c.Wait)
	_, err := c.Console(wctx, "verbose on", "console: verbose on")
	cancel()
	if err != nil {
		return rep, c.fail("console: verbose on: %v", err)
	}
	for i := range c.EchoCalls {
		s, err := c.echo(ctx, fmt.Sprintf("idle %d", i))
		if err != nil {
			return rep, err
		}
		rep.EchoIdle = append(rep.EchoIdle, s.end.Sub(s.start))
	}

	// The spinning phase. Spinners and the compute call run in their own
	// goroutines; this one keeps calling echo.
	var (
		mu      sync.Mutex
		spins   []span
		spinErr error
		ended   = map[int]int{} // spin calls ended per spinner
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	start := time.Now()
	beats := c.Heartbeats()
	for i := range c.Spinners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-time.After(time.Duration(i) * c.SpinTimeout / time.Duration(c.Spinners)):
			case <-stop:
				return
			}
			for {
				s, err := c.spin(ctx)
				mu.Lock()
				spins = append(spins, s)
				ended[i]++
				if err != nil && spinErr == nil {
					spinErr = err
				}
				mu.Unlock()
				select {
				case <-stop:
					return
				default:
				}
				if err != nil {
					return
				}
			}
		}()
	}
	type crunchResult struct {
		d   time.Duration
		err error
	}
	crunched := make(chan crunchResult, 1)
	go func() {
		d, err := c.crunch(ctx)
		crunched <- crunchResult{d, err}
	}()
	spinning := func() []span {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(spins)
	}
	finish := func(err error) (*SpinReport, error) {
		close(stop)
		wg.Wait()
		for _, sp := range spinning() {
			rep.Spins = append(rep.Spins, sp.end.Sub(sp.start))
		}
		return rep, err
	}
	var echoes []span
	echoWhile := func(label string) error {
		s, err := c.echo(ctx, label)
		if err != nil {
			return err
		}
		echoes = append(echoes, s)
		return nil
	}
	// Wait until the stick runs a spin call (the status counts it
	// started and not failed), then ask the console and the status.
	for {
		running, err := c.spinRunning(ctx)
		if err != nil {
			return finish(err)
		}
		if running {
			break
		}
		if err := ctx.Err(); err != nil {
			return finish(c.fail("no spin call started: %v", err))
		}
		time.Sleep(10 * time.Millisecond)
	}
	cctx, cancel := context.WithTimeout(ctx, c.Wait)
	typed := time.Now()
	line, err := c.Console(cctx, "uptime", "console: uptime")
	cancel()
	if err != nil {
		return finish(c.fail("the console did not answer uptime within %v while an actor spins: %v", c.Wait, err))
	}
	rep.Console, rep.ConsoleWait = line, time.Since(typed)
	if err := c.serving(ctx, "while spinning"); err != nil {
		return finish(err)
	}
	var crunchErr error
	crunchDone := false
	for i := 0; ; i++ {
		if err := echoWhile(fmt.Sprintf("spinning %d", i)); err != nil {
			return finish(err)
		}
		if !crunchDone {
			select {
			case r := <-crunched:
				crunchDone, crunchErr, rep.Crunch = true, r.err, r.d
			default:
			}
		}
		mu.Lock()
		enough, failed := crunchDone, spinErr
		for j := range c.Spinners {
			enough = enough && ended[j] >= 2
		}
		mu.Unlock()
		if failed != nil {
			return finish(failed)
		}
		if crunchErr != nil {
			return finish(crunchErr)
		}
		if enough && i+1 >= c.EchoCalls {
			break
		}
		if err := ctx.Err(); err != nil {
			return finish(c.fail("spinning phase: %v", err))
		}
	}
	close(stop)
	wg.Wait()
	rep.Spinning = time.Since(start)
	rep.Heartbeats = c.Heartbeats() - beats
	mu.Lock()
	err = spinErr
	mu.Unlock()
	if err != nil {
		return rep, err
	}
	all := spinning()
	for _, sp := range all {
		rep.Spins = append(rep.Spins, sp.end.Sub(sp.start))
	}
	for _, s := range echoes {
		if slices.ContainsFunc(all, s.within) {
			rep.EchoSpinning = append(rep.EchoSpinning, s.end.Sub(s.start))
		} else {
			rep.EchoOverlapping++
		}
	}
	if len(rep.EchoSpinning) < c.EchoCalls {
		return rep, c.fail("%d echo calls answered inside a spin call, want at least %d (%d around their ends)",
			len(rep.EchoSpinning), c.EchoCalls, rep.EchoOverlapping)
	}
	if rep.Heartbeats == 0 {
		return rep, c.fail("no heartbeat on the console in %v of spinning", rep.Spinning.Round(time.Millisecond))
	}

	// Afterwards: echo, the spinning actor (deadline again), the status.
	for i := range c.EchoCalls {
		s, err := c.echo(ctx, fmt.Sprintf("after %d", i))
		if err != nil {
			return rep, err
		}
		rep.EchoAfter = append(rep.EchoAfter, s.end.Sub(s.start))
	}
	s, err := c.spin(ctx)
	if err != nil {
		return rep, err
	}
	rep.Spins = append(rep.Spins, s.end.Sub(s.start))
	return rep, c.serving(ctx, "afterwards")
}

// Stats returns the minimum, median and maximum of ds.
func Stats(ds []time.Duration) (lo, median, hi time.Duration) {
	if len(ds) == 0 {
		return 0, 0, 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[0], s[len(s)/2], s[len(s)-1]
}

func (r *SpinReport) String() string {
	f := func(ds []time.Duration) string {
		lo, med, hi := Stats(ds)
		return fmt.Sprintf("%d calls, min %v median %v max %v", len(ds),
			lo.Round(10*time.Microsecond), med.Round(10*time.Microsecond), hi.Round(10*time.Microsecond))
	}
	return fmt.Sprintf("echo idle: %s\necho while spinning: %s (%d more around a spin call's end)\necho afterwards: %s\n"+
		"spin calls, sent to 504 deadline: %s\ncrunch beside them: %v\nconsole while spinning: %q after %v\n"+
		"heartbeats while spinning: %d in %v",
		f(r.EchoIdle), f(r.EchoSpinning), r.EchoOverlapping, f(r.EchoAfter), f(r.Spins), r.Crunch.Round(time.Millisecond),
		r.Console, r.ConsoleWait.Round(time.Millisecond), r.Heartbeats, r.Spinning.Round(time.Millisecond))
}
