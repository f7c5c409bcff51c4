//go:build fixed

package main

// fixed: this build falls back to a default quote on an outage.
const fixed = true
