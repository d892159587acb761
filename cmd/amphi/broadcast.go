package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/amphi-live/amphi/internal/llhls"
)

const (
	defaultAdminServer = "http://127.0.0.1:8080"
	// maxAdminResponse bounds how much of an admin API response is read.
	maxAdminResponse = 1 << 20
	adminAPIPrefix   = "/api/v1/broadcasts"
)

// broadcastOptions are the persistent flags of `amphi broadcast`.
type broadcastOptions struct {
	server  string
	token   string
	json    bool
	timeout time.Duration
}

func newBroadcastCmd() *cobra.Command {
	o := &broadcastOptions{}
	cmd := &cobra.Command{
		Use:   "broadcast",
		Short: "Create, stop and inspect broadcasts on an origin",
		Long: "Manage broadcasts through an origin's admin API.\n\n" +
			"The origin is found with --server (or AMPHI_SERVER) and every request\n" +
			"carries the admin token given with --token (or AMPHI_TOKEN). With --json\n" +
			"the API's JSON object is printed instead of the human-readable output.",
		Example: "  export AMPHI_TOKEN=...\n" +
			"  amphi broadcast start studio\n" +
			"  amphi broadcast status studio\n" +
			"  amphi broadcast list --json\n" +
			"  amphi broadcast stop studio",
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
		SilenceUsage: true,
	}
	// Mistyped flags on any subcommand are usage errors (exit 2).
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError(err) })

	pf := cmd.PersistentFlags()
	pf.StringVar(&o.server, "server", defaultAdminServer, "origin base URL (env AMPHI_SERVER)")
	pf.StringVar(&o.token, "token", "", "admin API token (env AMPHI_TOKEN; required)")
	pf.BoolVar(&o.json, "json", false, "print the API's JSON object (for scripts)")
	pf.DurationVar(&o.timeout, "timeout", 10*time.Second, "time limit for the request")

	cmd.AddCommand(
		newBroadcastStartCmd(o),
		newBroadcastStopCmd(o),
		newBroadcastListCmd(o),
		newBroadcastStatusCmd(o),
	)
	return cmd
}

func newBroadcastStartCmd(o *broadcastOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "start NAME",
		Short: "Create a broadcast and print its stream key and ingest URLs",
		Long: "Create the broadcast NAME (1-64 of a-z, 0-9 and -) and print its stream\n" +
			"key, the URLs to publish to (RTMP for ffmpeg, server and stream key for\n" +
			"OBS, HTTP) and the playback URL. The stream key is shown only once.",
		Args: nameArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client(cmd)
			if err != nil {
				return err
			}
			var b apiBroadcast
			raw, err := c.do(cmd, http.MethodPost, adminAPIPrefix, map[string]string{"name": args[0]}, &b)
			if err != nil {
				return fmt.Errorf("start %s: %w", args[0], c.explain(err, args[0]))
			}
			if o.json {
				return writeJSON(cmd.OutOrStdout(), raw)
			}
			return printStarted(cmd.OutOrStdout(), &b)
		},
	}
}

func newBroadcastStopCmd(o *broadcastOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "stop NAME",
		Short: "End a broadcast",
		Args:  nameArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client(cmd)
			if err != nil {
				return err
			}
			var b apiBroadcast
			raw, err := c.do(cmd, http.MethodPost, adminAPIPrefix+"/"+url.PathEscape(args[0])+"/stop", nil, &b)
			if err != nil {
				return fmt.Errorf("stop %s: %w", args[0], c.explain(err, args[0]))
			}
			if o.json {
				return writeJSON(cmd.OutOrStdout(), raw)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "Broadcast %s stopped (state: %s).\n", orDash(b.Name, args[0]), orDash(b.State, "-"))
			return err
		},
	}
}

func newBroadcastListCmd(o *broadcastOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the broadcasts",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.client(cmd)
			if err != nil {
				return err
			}
			var l apiBroadcastList
			raw, err := c.do(cmd, http.MethodGet, adminAPIPrefix, nil, &l)
			if err != nil {
				return fmt.Errorf("list: %w", c.explain(err, ""))
			}
			if o.json {
				return writeJSON(cmd.OutOrStdout(), raw)
			}
			return printList(cmd.OutOrStdout(), l.Broadcasts)
		},
	}
}

func newBroadcastStatusCmd(o *broadcastOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "status NAME",
		Short: "Show a broadcast's state, codec, bitrate and position",
		Args:  nameArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client(cmd)
			if err != nil {
				return err
			}
			var b apiBroadcast
			raw, err := c.do(cmd, http.MethodGet, adminAPIPrefix+"/"+url.PathEscape(args[0]), nil, &b)
			if err != nil {
				return fmt.Errorf("status %s: %w", args[0], c.explain(err, args[0]))
			}
			if o.json {
				return writeJSON(cmd.OutOrStdout(), raw)
			}
			return printStatus(cmd.OutOrStdout(), &b)
		},
	}
}

// usageArgs turns cobra's argument errors into usage errors (exit 2).
func usageArgs(v cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := v(cmd, args); err != nil {
			return usageError(err)
		}
		return nil
	}
}

// nameArg accepts exactly one valid broadcast name.
func nameArg(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return usageError(fmt.Errorf("%s needs exactly one broadcast NAME, got %d arguments", cmd.CommandPath(), len(args)))
	}
	if !llhls.ValidName(args[0]) {
		return usageError(fmt.Errorf("invalid broadcast name %q: use 1-64 of a-z, 0-9 and -", args[0]))
	}
	return nil
}

// API types. Unknown fields are ignored so that newer origins keep working.

type apiBroadcast struct {
	Name          string    `json:"name"`
	State         string    `json:"state"`
	Key           string    `json:"key,omitempty"`
	CreatedAt     string    `json:"created_at,omitempty"`
	LiveSince     string    `json:"live_since,omitempty"`
	UptimeSeconds float64   `json:"uptime_seconds"`
	Codec         string    `json:"codec,omitempty"`
	BitrateBPS    float64   `json:"bitrate_bps"`
	MediaSequence int64     `json:"media_sequence"`
	Part          int64     `json:"part"`
	Ingest        apiIngest `json:"ingest"`
	Playback      string    `json:"playback,omitempty"`
}

type apiIngest struct {
	RTMP          string `json:"rtmp,omitempty"`
	RTMPServer    string `json:"rtmp_server,omitempty"`
	RTMPStreamKey string `json:"rtmp_stream_key,omitempty"`
	HTTP          string `json:"http,omitempty"`
}

type apiBroadcastList struct {
	Broadcasts []apiBroadcast `json:"broadcasts"`
}

type apiErrorBody struct {
	Error string `json:"error"`
}

// adminClient talks to one origin's admin API.
type adminClient struct {
	base    string // scheme://host[/prefix], no trailing slash
	token   string
	timeout time.Duration
	http    *http.Client
}

// client resolves flags and environment (flag, then AMPHI_*, then default).
func (o *broadcastOptions) client(cmd *cobra.Command) (*adminClient, error) {
	flags := cmd.Flags()
	server := o.server
	if !flags.Changed("server") {
		if v := os.Getenv("AMPHI_SERVER"); v != "" {
			server = v
		}
	}
	token := o.token
	if !flags.Changed("token") {
		token = os.Getenv("AMPHI_TOKEN")
	}
	token = strings.TrimSpace(token)
	if token == "" {
		return nil, usageError(errors.New("no admin token: pass --token or set AMPHI_TOKEN"))
	}
	if o.timeout <= 0 {
		return nil, usageError(fmt.Errorf("--timeout must be positive, got %s", o.timeout))
	}
	base, err := parseServer(server)
	if err != nil {
		return nil, usageError(err)
	}
	return &adminClient{base: base, token: token, timeout: o.timeout, http: &http.Client{}}, nil
}

// parseServer checks --server and returns it without a trailing slash.
// A bare host:port means http://host:port.
func parseServer(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", errors.New("--server is empty")
	}
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("invalid --server %q: %w", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("invalid --server %q: the scheme must be http or https", s)
	}
	if u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("invalid --server %q: want a base URL such as %s", s, defaultAdminServer)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// apiError is a non-2xx answer from the admin API.
type apiError struct {
	path   string
	status int
	msg    string // the server's {"error": ...}, if any
	isJSON bool
}

func (e *apiError) Error() string {
	s := fmt.Sprintf("HTTP %d %s", e.status, http.StatusText(e.status))
	if e.msg != "" {
		s += ": " + e.msg
	}
	return s
}

// transportError is a request that got no HTTP answer.
type transportError struct {
	server  string
	timeout time.Duration
	err     error
}

func (e *transportError) Unwrap() error { return e.err }

func (e *transportError) Error() string {
	var dnsErr *net.DNSError
	var netErr net.Error
	switch {
	case errors.Is(e.err, syscall.ECONNREFUSED):
		return fmt.Sprintf("server not reachable at %s: connection refused (is the origin running? set --server or AMPHI_SERVER)", e.server)
	case errors.As(e.err, &dnsErr):
		return fmt.Sprintf("server not reachable at %s: cannot resolve host %q (check --server or AMPHI_SERVER)", e.server, dnsErr.Name)
	case errors.Is(e.err, context.DeadlineExceeded) || (errors.As(e.err, &netErr) && netErr.Timeout()):
		return fmt.Sprintf("no answer from %s within %s (--timeout)", e.server, e.timeout)
	case errors.Is(e.err, context.Canceled):
		return "canceled"
	}
	var urlErr *url.Error
	inner := e.err
	if errors.As(e.err, &urlErr) {
		inner = urlErr.Err
	}
	return fmt.Sprintf("server not reachable at %s: %v", e.server, inner)
}

// do sends one request and decodes a 2xx JSON answer into out. It returns
// the answer's raw bytes for --json.
func (c *adminClient) do(cmd *cobra.Command, method, path string, body, out any) ([]byte, error) {
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()

	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, usageError(fmt.Errorf("invalid request URL: %w", err))
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "amphi/"+buildVersion())
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := c.http.Do(req)
	if err != nil {
		return nil, &transportError{server: c.base, timeout: c.timeout, err: err}
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, maxAdminResponse+1))
	if err != nil {
		var netErr net.Error
		if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &netErr) && netErr.Timeout()) {
			return nil, &transportError{server: c.base, timeout: c.timeout, err: err}
		}
		return nil, fmt.Errorf("reading the answer from %s: %w", c.base, err)
	}
	if len(data) > maxAdminResponse {
		return nil, fmt.Errorf("%s %s: response larger than %d bytes", method, path, maxAdminResponse)
	}
	if res.StatusCode < 200 || res.StatusCode > 299 {
		e := &apiError{path: path, status: res.StatusCode}
		var eb apiErrorBody
		if json.Unmarshal(data, &eb) == nil && eb.Error != "" {
			e.msg, e.isJSON = eb.Error, true
		}
		return nil, e
	}
	if err := json.Unmarshal(data, out); err != nil {
		return nil, fmt.Errorf("unexpected answer from %s (HTTP %d, not a JSON object): %w", c.base, res.StatusCode, err)
	}
	return data, nil
}

// explain adds what an API error most likely means.
func (c *adminClient) explain(err error, name string) error {
	var ae *apiError
	if !errors.As(err, &ae) {
		return err
	}
	switch {
	case ae.status == http.StatusUnauthorized:
		return fmt.Errorf("the admin token is wrong or missing; check --token or AMPHI_TOKEN (%w)", err)
	case ae.status == http.StatusForbidden:
		return fmt.Errorf("the admin token is not allowed to do this (%w)", err)
	case ae.status == http.StatusNotFound && !ae.isJSON:
		return fmt.Errorf("%s has no admin API at %s; is --server an amphi origin? (%w)", c.base, ae.path, err)
	case ae.status == http.StatusNotFound && name != "":
		return fmt.Errorf("broadcast %s not found (%w)", name, err)
	case ae.status == http.StatusConflict && name != "":
		return fmt.Errorf("broadcast %s already exists and has not ended (%w)", name, err)
	case ae.status == http.StatusBadRequest:
		return fmt.Errorf("the server rejected the request (%w)", err)
	case ae.status == http.StatusRequestEntityTooLarge:
		return fmt.Errorf("the request was too large (%w)", err)
	case ae.status >= 500:
		return fmt.Errorf("the server failed; see its log (%w)", err)
	}
	return err
}

// writeJSON prints an API answer, indented, with every field it carried.
func writeJSON(w io.Writer, raw []byte) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return err
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}

func printStarted(w io.Writer, b *apiBroadcast) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "Broadcast %s created.\n\n", b.Name)
	if b.Key != "" {
		fmt.Fprintf(tw, "Stream key:\t%s\n", b.Key)
		fmt.Fprintf(tw, "\t(shown only once: save it now, it cannot be shown again)\n")
	} else {
		fmt.Fprintf(tw, "Stream key:\t(not returned by the server)\n")
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "Ingest:")
	line := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "  %s\t%s\n", k, v)
		}
	}
	line("RTMP (ffmpeg):", b.Ingest.RTMP)
	line("OBS server:", b.Ingest.RTMPServer)
	line("OBS stream key:", b.Ingest.RTMPStreamKey)
	line("HTTP (MPEG-TS PUT):", b.Ingest.HTTP)
	fmt.Fprintln(tw)
	fmt.Fprintf(tw, "Playback:\t%s\n", orDash(b.Playback, "-"))
	if b.Ingest.RTMP != "" {
		fmt.Fprintf(tw, "\nExample:\n  ffmpeg -re -i INPUT -c:a aac -b:a 64k -f flv '%s'\n", b.Ingest.RTMP)
	}
	return tw.Flush()
}

func printStatus(w io.Writer, b *apiBroadcast) error {
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	fmt.Fprintf(tw, "name:\t%s\n", b.Name)
	fmt.Fprintf(tw, "state:\t%s\n", orDash(b.State, "-"))
	fmt.Fprintf(tw, "codec:\t%s\n", orDash(b.Codec, "-"))
	fmt.Fprintf(tw, "bitrate:\t%s\n", formatBitrate(b.BitrateBPS))
	fmt.Fprintf(tw, "uptime:\t%s\n", formatUptime(b.UptimeSeconds))
	fmt.Fprintf(tw, "media sequence:\t%d\n", b.MediaSequence)
	fmt.Fprintf(tw, "part:\t%d\n", b.Part)
	fmt.Fprintf(tw, "created:\t%s\n", orDash(b.CreatedAt, "-"))
	if b.LiveSince != "" {
		fmt.Fprintf(tw, "live since:\t%s\n", b.LiveSince)
	}
	fmt.Fprintf(tw, "playback:\t%s\n", orDash(b.Playback, "-"))
	return tw.Flush()
}

func printList(w io.Writer, bs []apiBroadcast) error {
	if len(bs) == 0 {
		_, err := fmt.Fprintln(w, "No broadcasts.")
		return err
	}
	sorted := append([]apiBroadcast(nil), bs...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATE\tCODEC\tBITRATE\tUPTIME")
	for _, b := range sorted {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", b.Name, orDash(b.State, "-"), orDash(b.Codec, "-"),
			formatBitrate(b.BitrateBPS), formatUptime(b.UptimeSeconds))
	}
	return tw.Flush()
}

func orDash(s, dflt string) string {
	if s == "" {
		return dflt
	}
	return s
}

// formatBitrate prints bits per second as kb/s; "-" when unknown.
func formatBitrate(bps float64) string {
	if bps <= 0 {
		return "-"
	}
	kbps := bps / 1000
	if kbps < 10 {
		return strconv.FormatFloat(kbps, 'f', 1, 64) + " kb/s"
	}
	return strconv.FormatFloat(kbps, 'f', 0, 64) + " kb/s"
}

// formatUptime prints whole seconds as a duration; "-" when not live.
func formatUptime(sec float64) string {
	if sec <= 0 {
		return "-"
	}
	return (time.Duration(sec * float64(time.Second))).Round(time.Second).String()
}
