package qemu

import "testing"

func TestGoCommandCrashed(t *testing.T) {
	tests := []struct {
		name string
		out  string
		want bool
	}{
		{"crash in cmd/go", "panic: runtime error: index out of range\n\ngoroutine 31 [running]:\ncmd/go/internal/modload.UpdateGoModFromReqs(...)", true},
		{"compile error", "firmware/stick/main.go:3:1: syntax error", false},
		{"panic in our code at build time", "panic: boom\n\ngoroutine 1 [running]:\nmain.main()", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := goCommandCrashed([]byte(tc.out)); got != tc.want {
				t.Fatalf("goCommandCrashed = %v, want %v", got, tc.want)
			}
		})
	}
}
