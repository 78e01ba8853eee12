package measure_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2/transport/linuxudstpm"

	"github.com/teastick/teastick/tpm/measure"
	"github.com/teastick/teastick/tpm/swtpmtest"
)

// The hosted stick talks to swtpm through go-tpm's linuxudstpm, which is
// not safe for concurrent use; the Measurer and the Attester use the TPM
// from different goroutines. Through Serialize, concurrent commands all
// get their own answers.
func TestSerializeConcurrentCommands(t *testing.T) {
	srv := swtpmtest.Start(t, swtpmtest.Options{Provision: true})
	raw, err := linuxudstpm.Open(srv.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	tpm := measure.Serialize(raw)
	want, err := measure.ReadPCRs(tpm, []uint32{0, 4, 8})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				got, err := measure.ReadPCRs(tpm, []uint32{0, 4, 8})
				if err != nil {
					errs <- err
					return
				}
				for pcr, v := range want {
					if got[pcr] != v {
						errs <- fmt.Errorf("PCR %d read %x, want %x", pcr, got[pcr], v)
						return
					}
				}
			}
		}()
	}
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("concurrent commands hung")
	}
	close(errs)
	for err := range errs {
		t.Errorf("concurrent PCR read: %v", err)
	}
}
