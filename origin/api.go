package origin

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
)

// maxAPIBody bounds admin API request bodies.
const maxAPIBody = 4 << 10

// apiBroadcast is a broadcast in API responses: its status plus the URLs a
// host and an operator need. Key is only set in the answer to a start.
type apiBroadcast struct {
	BroadcastStatus
	Key      string    `json:"key,omitempty"`
	Ingest   apiIngest `json:"ingest"`
	Playback string    `json:"playback"`
	Player   string    `json:"player"`
}

type apiIngest struct {
	RTMP          string `json:"rtmp,omitempty"`
	RTMPServer    string `json:"rtmp_server,omitempty"`
	RTMPStreamKey string `json:"rtmp_stream_key,omitempty"`
	HTTP          string `json:"http"`
}

// registerAPI mounts the admin API under /api/v1/.
func (s *Server) registerAPI(mux *http.ServeMux) {
	mux.Handle("POST /api/v1/broadcasts", s.authed(s.apiStart))
	mux.Handle("GET /api/v1/broadcasts", s.authed(s.apiList))
	mux.Handle("GET /api/v1/broadcasts/{name}", s.authed(s.apiStatus))
	mux.Handle("POST /api/v1/broadcasts/{name}/stop", s.authed(s.apiStop))
	mux.Handle("/api/", s.authed(func(w http.ResponseWriter, _ *http.Request) {
		apiError(w, http.StatusNotFound, "no such API endpoint or method")
	}))
}

// authed requires the configured bearer token, compared in constant time.
func (s *Server) authed(h http.HandlerFunc) http.Handler {
	want := sha256.Sum256([]byte(s.cfg.API.Token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if s.cfg.API.Token == "" {
			apiError(w, http.StatusUnauthorized, "the admin API is disabled: set api.token or AMPHI_TOKEN on the origin")
			return
		}
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		got := sha256.Sum256([]byte(strings.TrimSpace(tok)))
		if !ok || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			s.log.Warn("admin API: bad or missing token", "remote", r.RemoteAddr, "path", r.URL.Path)
			w.Header().Set("WWW-Authenticate", `Bearer realm="amphi"`)
			apiError(w, http.StatusUnauthorized, "missing or wrong bearer token")
			return
		}
		h(w, r)
	})
}

func (s *Server) apiStart(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name string `json:"name"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxAPIBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			apiError(w, http.StatusRequestEntityTooLarge, "request body larger than 4 KiB")
			return
		}
		apiError(w, http.StatusBadRequest, "malformed JSON: "+err.Error())
		return
	}
	if dec.More() {
		apiError(w, http.StatusBadRequest, "malformed JSON: trailing data")
		return
	}
	key, err := s.CreateBroadcast(req.Name)
	switch {
	case errors.Is(err, ErrInvalidName):
		apiError(w, http.StatusBadRequest, err.Error())
		return
	case errors.Is(err, ErrExists):
		apiError(w, http.StatusConflict, err.Error())
		return
	case err != nil:
		apiError(w, http.StatusInternalServerError, err.Error())
		return
	}
	st, err := s.Status(req.Name)
	if err != nil {
		apiError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusCreated, s.describe(r, st, key))
}

func (s *Server) apiList(w http.ResponseWriter, r *http.Request) {
	list := s.List()
	out := struct {
		Broadcasts []apiBroadcast `json:"broadcasts"`
	}{Broadcasts: make([]apiBroadcast, 0, len(list))}
	for _, st := range list {
		out.Broadcasts = append(out.Broadcasts, s.describe(r, st, ""))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) apiStatus(w http.ResponseWriter, r *http.Request) {
	st, err := s.Status(r.PathValue("name"))
	if err != nil {
		apiError(w, http.StatusNotFound, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, s.describe(r, st, ""))
}

func (s *Server) apiStop(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := s.StopBroadcast(name); err != nil {
		code := http.StatusInternalServerError
		if errors.Is(err, ErrUnknownBroadcast) {
			code = http.StatusNotFound
		}
		apiError(w, code, err.Error())
		return
	}
	st, err := s.Status(name)
	if err != nil {
		apiError(w, http.StatusNotFound, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, s.describe(r, st, ""))
}

// describe adds the URLs for a broadcast, built from the host the operator
// reached the API on. The key appears only when given (in the start answer).
func (s *Server) describe(r *http.Request, st BroadcastStatus, key string) apiBroadcast {
	host := r.Host
	hostname := host
	if h, _, err := net.SplitHostPort(host); err == nil {
		hostname = h
	}
	base := "http://" + host
	out := apiBroadcast{
		BroadcastStatus: st,
		Key:             key,
		Playback:        base + "/live/" + st.Name + "/index.m3u8",
		Player:          base + "/live/" + st.Name + "/",
	}
	q := ""
	if key != "" {
		q = "?key=" + url.QueryEscape(key)
	}
	out.Ingest.HTTP = base + "/ingest/" + st.Name + q
	if s.cfg.RTMP.Listen != "" {
		_, port, _ := net.SplitHostPort(s.cfg.RTMP.Listen)
		server := "rtmp://" + net.JoinHostPort(hostname, port) + "/live"
		out.Ingest.RTMPServer = server
		out.Ingest.RTMP = server + "/" + st.Name + q
		if key != "" {
			out.Ingest.RTMPStreamKey = st.Name + q
		}
	}
	return out
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func apiError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

func sortStatuses(list []BroadcastStatus) {
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
}
