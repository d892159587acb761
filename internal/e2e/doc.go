// Package e2e holds amphi's end-to-end browser tests: an origin and an edge
// run in the test process, and headless Chromium plays the player page
// through the edge with hls.js in low-latency mode. The package has no
// non-test code; see README.md for what the tests need and how to run them.
package e2e
