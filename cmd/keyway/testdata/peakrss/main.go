// Command peakrss runs a command and writes its CPU time and peak RSS to a file:
//
//	peakrss OUT CMD [ARG...]
//
// Benchmarks use it because a Go program starts children with vfork: the kernel then records
// the parent's own high-water RSS as the child's when the child calls exec, so a benchmark
// process of 90 MiB would report every child as at least 90 MiB. This helper is small, so
// what it reports is the child's own peak.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: peakrss OUT CMD [ARG...]")
		os.Exit(2)
	}
	cmd := exec.Command(os.Args[2], os.Args[3:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err := cmd.Run()
	if cmd.ProcessState == nil {
		fmt.Fprintln(os.Stderr, "peakrss:", err)
		os.Exit(2)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	line := fmt.Sprintf("%d %d %d\n", ru.Utime.Nano(), ru.Stime.Nano(), ru.Maxrss)
	if werr := os.WriteFile(os.Args[1], []byte(line), 0o644); werr != nil {
		fmt.Fprintln(os.Stderr, "peakrss:", werr)
		os.Exit(2)
	}
	os.Exit(cmd.ProcessState.ExitCode())
}
