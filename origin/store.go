package origin

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// storeFile is the broadcast store inside the data directory.
const storeFile = "amphi.db"

var bucketBroadcasts = []byte("broadcasts")

// record is what survives a restart: the broadcast, its key hash, and
// whether an operator ended it. Runtime state (live, reconnecting) does not.
type record struct {
	Name      string    `json:"name"`
	KeyHash   []byte    `json:"key_hash"` // SHA-256 of the stream key
	CreatedAt time.Time `json:"created_at"`
	Ended     bool      `json:"ended"`
}

// store keeps broadcast records in a bbolt file: every write is a fsynced
// transaction, so a crash never leaves a half-written record.
type store struct {
	db *bolt.DB
}

func openStore(dir string) (*store, error) {
	path := filepath.Join(dir, storeFile)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("data: opening %s (is another amphi using this data directory?): %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketBroadcasts)
		return err
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("data: %s: %w", path, err)
	}
	return &store{db: db}, nil
}

func (st *store) put(r record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return st.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketBroadcasts).Put([]byte(r.Name), b)
	})
}

func (st *store) all() ([]record, error) {
	var out []record
	err := st.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketBroadcasts).ForEach(func(k, v []byte) error {
			var r record
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("record %q: %w", k, err)
			}
			out = append(out, r)
			return nil
		})
	})
	return out, err
}

func (st *store) close() error { return st.db.Close() }
