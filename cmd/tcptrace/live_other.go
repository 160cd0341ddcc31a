//go:build !linux

package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// errNotLinux is what the live commands say elsewhere.
var errNotLinux = errors.New("live tracing needs Linux; here tcptrace can replay recordings (tcptrace replay FILE)")

// The live commands exist everywhere, for their help, and say why they
// cannot run.
var bindTrace, bindFeatures, bindSysctl = bindNotLinux, bindNotLinux, bindNotLinux

func bindNotLinux(*cobra.Command) func([]string) error {
	return func([]string) error { return errNotLinux }
}

func explainLive(error) (string, bool) { return "", false }
