//go:build !fixed

package main

// fixed: this is the build with the bug (an outage fails the job).
const fixed = false
