//go:build !linux

package main

import (
	"context"
	"errors"
	"io"
)

// errNotLinux is what the live commands say elsewhere.
var errNotLinux = errors.New("live tracing needs Linux; here tcptrace can replay recordings (tcptrace replay FILE)")

func runTrace(context.Context, []string, io.Writer, io.Writer) error { return errNotLinux }
func runFeatures([]string, io.Writer) error                          { return errNotLinux }
func runSysctl([]string, io.Writer) error                            { return errNotLinux }

func explainLive(error) (string, bool) { return "", false }
