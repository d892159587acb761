package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/pprof"

	"github.com/spf13/pflag"
)

// pprofFlag registers --pprof: an address for Go's profiling endpoints,
// on a listener of their own so they are never exposed with the service.
func pprofFlag(fs *pflag.FlagSet) *string {
	return fs.String("pprof", "", "serve Go profiling endpoints (/debug/pprof/) on this address, e.g. 127.0.0.1:6060")
}

// startPprof serves the profiling endpoints on addr until ctx ends.
func startPprof(ctx context.Context, addr string) error {
	if addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return usageError(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	go func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			newLogger("warn").Warn("pprof server stopped", "err", err)
		}
	}()
	return nil
}
